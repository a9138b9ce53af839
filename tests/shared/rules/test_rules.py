import numpy as np
import pytest
import talib
from talib._ta_lib import MA_Type

from shared.rules import RuleSyntaxError, evaluate, lookback, parse_rule
from shared.rules.parser import MAX_DEPTH, MAX_NODES, MAX_RULE_LENGTH
from tests.shared.sample_candles import random_candles

SMA = MA_Type.SMA
C = random_candles(800, seed=3)


def cross_above(a, b):
    out = np.zeros(a.shape[0], dtype=bool)
    out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def test_a_rule_evaluates_equal_to_the_same_rule_written_in_numpy():
    rule = "rsi(14) < 45 and close > sma(50) or (close - open) / open * 100 >= 0.3"
    ours = evaluate(parse_rule(rule), C)
    rsi = talib.RSI(C.close, 14)
    sma = talib.SMA(C.close, 50)
    theirs = ((rsi < 45) & (C.close > sma)) | ((C.close - C.open) / C.open * 100 >= 0.3)
    assert ours.any()
    assert not ours.all()
    np.testing.assert_array_equal(ours, theirs)


def test_crosses_and_not_and_field_sources_evaluate_like_numpy():
    rule = "ema(10, high) crosses_above sma(30, low) and not (volume > 40) and -atr(14) < 0"
    ours = evaluate(parse_rule(rule), C)
    ema = talib.EMA(C.high, 10)
    sma = talib.SMA(C.low, 30)
    atr = talib.ATR(C.high, C.low, C.close, 14)
    theirs = cross_above(ema, sma) & ~(C.volume > 40) & (-atr < 0)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.sum() > 0


def test_macd_bollinger_and_stochastic_functions_match_talib():
    rule = "macd() > macd_signal() and close < bb_lower(20, 2) + 0 * stoch_k() or macd_hist() == 0"
    ours = evaluate(parse_rule(rule), C)
    line, signal, hist = talib.MACD(C.close, 12, 26, 9)
    _, _, lower = talib.BBANDS(C.close, 20, 2, 2, SMA)
    k, _ = talib.STOCH(C.high, C.low, C.close, 14, 3, SMA, 3, SMA)
    theirs = ((line > signal) & (C.close < lower + 0 * k)) | (hist == 0)
    np.testing.assert_array_equal(ours, theirs)


def test_a_rule_is_never_true_during_its_warm_up_even_under_not():
    tree = parse_rule("not (sma(100) > close)")
    values = evaluate(tree, C)
    assert lookback(tree) == 99
    assert not values[:99].any()
    assert values[99:].any()


@pytest.mark.parametrize(
    ("rule", "column", "message"),
    [
        ("close.__class__ > 1", 6, "attribute access is not allowed"),
        ("__import__(1) > 1", 1, "unknown name '__import__'"),
        ("exec(1) > 0", 1, "unknown name 'exec'"),
        ("close[0] > 1", 6, "indexing is not allowed"),
        ("rsi(14 < 30", 8, "expected ',' or ')'"),
        ("rsi(14) <", 10, "expected a number, a field or a function"),
        ("close and 3 > 1", 1, "must be a condition"),
        ("sma(20)", 1, "a rule must be a condition"),
        ("close > 1 > 0", 11, "chained comparisons"),
        ("sma(0) > 1", 1, "whole number from 1"),
        ("sma(20, 30, 40) > 1", 1, "takes at most 2 arguments"),
        ("close('x') > 1", 7, "call it only as close(tf="),
        ("rsi(14, tf='5x') < 30", 12, "unknown timeframe '5x'"),
        ("rsi(14, tf=4) < 30", 12, "a timeframe in quotes"),
        ("rsi(tf='4h', 14) < 30", 14, "positional argument cannot follow a keyword"),
        ("bb_upper(20, kk=2) > 1", 1, "has no parameter 'kk'"),
        ("'4h' > 1", 1, "a string is only allowed as a timeframe"),
        ("rsi(14) = 30", 9, "use == to compare"),
        ("", 1, "empty rule"),
    ],
)
def test_syntax_errors_point_at_the_offending_character(rule, column, message):
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(rule)
    assert message in info.value.message
    assert info.value.position + 1 == column
    assert f"at column {column}" in str(info.value)


def test_huge_inputs_are_refused_before_any_work():
    with pytest.raises(RuleSyntaxError, match="too long"):
        parse_rule("close > 1 and " * (MAX_RULE_LENGTH // 10) + "close > 1")
    with pytest.raises(RuleSyntaxError, match="nested too deeply"):
        parse_rule("(" * (MAX_DEPTH + 5) + "close > 1" + ")" * (MAX_DEPTH + 5))
    with pytest.raises(RuleSyntaxError, match="nested too deeply"):
        parse_rule("not " * (MAX_DEPTH + 5) + "close > 1")
    many = " + ".join(["close"] * (MAX_NODES // 2 + 10))
    assert len(many) < MAX_RULE_LENGTH
    with pytest.raises(RuleSyntaxError, match="too complex"):
        parse_rule(f"{many} > 1")
    with pytest.raises(RuleSyntaxError, match="too large"):
        parse_rule("close > 1e300")


def test_division_by_zero_is_undefined_not_true():
    values = evaluate(parse_rule("close / (open - open) > 0"), C)
    assert not values.any()
