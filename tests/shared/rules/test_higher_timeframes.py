"""Rules reading higher timeframes (`rsi(14, tf="4h")`) see a higher candle only once it
has closed."""

import numpy as np

from shared.backtest import check_lookahead, run_backtest
from shared.candles import Candles
from shared.resample import attach
from shared.rules import evaluate, parse_rule
from shared.strategies import ENTER_LONG, create_strategy
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000
START = 1_735_689_600_000  # 2025-01-01T00:00Z


def hourly(closes: list[float]) -> Candles:
    c = np.array(closes, dtype=float)
    ts = START + HOUR * np.arange(c.size, dtype=np.int64)
    return Candles(ts, c, c + 1, c - 1, c, np.ones(c.size))


def test_a_four_hour_close_counts_only_from_the_hour_its_candle_closed():
    # Flat at 100 for four 4 h candles, then 200 from 16:00: the 16:00-20:00 candle's close
    # is 200, which a peek at the forming candle would read at 16:00, 17:00 and 18:00.
    candles = hourly([100.0] * 16 + [200.0] * 8)
    became_true = np.flatnonzero(evaluate(parse_rule('close(tf="4h") > 150'), candles))
    assert became_true[0] == 19  # the 19:00 candle closes at 20:00, with its 4 h candle
    assert list(became_true) == [19, 20, 21, 22, 23]
    # The same with an indicator of the 4 h candles, and the trading close for contrast.
    sma = np.flatnonzero(evaluate(parse_rule('sma(1, tf="4h") > 150'), candles))
    assert sma[0] == 19
    assert np.flatnonzero(evaluate(parse_rule("close > 150"), candles))[0] == 16


def test_a_rule_cannot_be_true_before_its_higher_timeframe_has_warmed_up():
    candles = random_candles(200, start_ms=START, frame_ms=HOUR)
    not_oversold = evaluate(parse_rule('not (rsi(14, tf="4h") < 30)'), candles)
    # RSI(14) of 4 h candles exists from the 15th one, closed at hour 15 * 4 - 1.
    assert not not_oversold[: 15 * 4 - 1].any()
    assert not_oversold[15 * 4 - 1 :].any()


def test_a_rule_strategy_declares_its_higher_timeframes_and_their_warm_up():
    strategy = create_strategy(
        "rules",
        {"entry": 'rsi(14, tf="4h") < 40 and close > sma(50)', "exit": 'close(tf="1d") < 1'},
    )
    assert strategy.higher_timeframes() == {"4h": 15, "1d": 1}
    assert strategy.warmup == 50
    # 16 four-hour candles (one more for a first bucket the candles start inside of)
    assert strategy.warmup_candles(HOUR) == 16 * 4
    assert strategy.warmup_candles(4 * HOUR) == 50


def test_higher_timeframe_rules_pass_the_lookahead_check_aggregated_or_loaded():
    candles = random_candles(1500, seed=8, start_ms=START, frame_ms=HOUR)
    strategy = create_strategy(
        "rules",
        {
            "entry": 'rsi(14, tf="4h") < 45 and close crosses_above ema(20)',
            "exit": 'close < bb_middle(20, tf="1d")',
        },
    )
    assert (strategy.signals(candles) == ENTER_LONG).sum() > 5
    assert check_lookahead(strategy, candles, cuts=30).ok
    # Loaded daily candles (history from 60 days before) instead of aggregated ones.
    days = random_candles(130, seed=9, start_ms=START - 60 * 24 * HOUR, frame_ms=24 * HOUR)
    loaded = attach(candles, {"1d": days}, HOUR)
    assert check_lookahead(strategy, loaded, cuts=30).ok
    assert run_backtest(strategy, loaded).metrics["n_trades"] > 0
