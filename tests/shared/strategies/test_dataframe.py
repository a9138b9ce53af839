"""DataFrame strategies: freqtrade's shape, the engine's exact semantics, no look-ahead."""

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib.abstract as ta

from shared.backtest import check_lookahead, run_backtest
from shared.strategies import ENTER_LONG, EXIT_LONG, StrategyParamsError, create_strategy
from shared.strategies import frame_indicators as qtpylib
from shared.strategies.dataframe import DataFrameStrategy, IntParameter, merge_informative_pair
from shared.strategies.examples.rsi_trend_pullback import RsiTrendPullback
from shared.strategies.examples.sma_crossover_frame import SmaCrossoverFrame
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000
C = random_candles(2000, seed=5, start_ms=1_735_689_600_000, frame_ms=HOUR)


@pytest.mark.parametrize("params", [{}, {"fast": 5, "slow": 21, "ma": "ema"}])
def test_the_dataframe_crossover_trades_exactly_like_ma_crossover(params):
    frame = SmaCrossoverFrame(params)
    builtin = create_strategy("ma_crossover", params)
    np.testing.assert_array_equal(frame.signals(C), builtin.signals(C))
    ours = run_backtest(frame, C, fee=0.001, slippage=0.0005)
    theirs = run_backtest(builtin, C, fee=0.001, slippage=0.0005)
    assert ours.metrics["n_trades"] > 10
    assert [t.to_json() for t in ours.trades] == [t.to_json() for t in theirs.trades]
    assert ours.metrics == theirs.metrics


def test_the_ported_example_reads_freqtrades_exits_parameters_and_higher_timeframe():
    strategy = RsiTrendPullback({"buy_rsi": 45})
    assert strategy.name == "RsiTrendPullback"
    assert (strategy.stop_loss(), strategy.take_profit(), strategy.trailing_stop()) == (
        0.05,
        0.08,
        None,
    )
    assert strategy.buy_rsi.value == 45
    assert RsiTrendPullback().buy_rsi.value == 35  # each instance holds its own values
    assert strategy.warmup == 30
    assert strategy.higher_timeframes() == {"4h": 30}
    frame = strategy.analyze(C)
    assert {"rsi", "sma_4h", "date_4h", "close_4h", "enter_long", "exit_long"} <= set(frame)
    # Each hour sees the last 4 h candle closed by its own close, never the forming one.
    closes = frame["date"] + pd.Timedelta(hours=1)
    seen = frame["date_4h"] + pd.Timedelta(hours=4)
    known = seen.notna()
    assert not known[:3].any()  # 00:00-03:00: the first 4 h candle closes with the 03:00 one
    assert known[3:].all()
    lag = closes[known] - seen[known]
    assert (lag >= pd.Timedelta(0)).all()
    assert (lag < pd.Timedelta(hours=4)).all()
    signals = strategy.signals(C)
    assert (signals == ENTER_LONG).sum() >= 3
    assert (signals == EXIT_LONG).sum() >= 3
    assert not signals[:30].any()  # the startup candles


@pytest.mark.parametrize(
    "strategy", [SmaCrossoverFrame(), RsiTrendPullback({"buy_rsi": 45})], ids=lambda s: s.name
)
def test_the_examples_pass_the_lookahead_check(strategy):
    report = check_lookahead(strategy, C, cuts=25)
    assert report.ok, report.mismatches


class Peeks(DataFrameStrategy):
    """Buys before a rise it can only know from the next candle."""

    def populate_entry_trend(self, dataframe: pd.DataFrame, metadata: dict[str, Any]) -> Any:
        dataframe.loc[dataframe["close"].shift(-1) > dataframe["close"] * 1.002, "enter_long"] = 1
        return dataframe


class PeeksAtTheForming4h(DataFrameStrategy):
    """Joins 4 h candles on their open time: the candle still forming leaks in."""

    startup_candle_count = 5

    def informative_pairs(self) -> list[tuple[str, ...]]:
        return [("", "4h")]

    def populate_entry_trend(self, dataframe: pd.DataFrame, metadata: dict[str, Any]) -> Any:
        four = self.dp.get_pair_dataframe(metadata["pair"], "4h")
        opens = dataframe["date"].dt.floor("4h")
        close_4h = opens.map(dict(zip(four["date"], four["close"], strict=True)))
        dataframe.loc[close_4h > dataframe["close"], "enter_long"] = 1
        return dataframe


class MergesProperly(PeeksAtTheForming4h):
    """The same, joined with merge_informative_pair: no look-ahead."""

    def populate_entry_trend(self, dataframe: pd.DataFrame, metadata: dict[str, Any]) -> Any:
        four = self.dp.get_pair_dataframe(metadata["pair"], "4h")
        dataframe = merge_informative_pair(dataframe, four, self.timeframe, "4h", ffill=True)
        dataframe.loc[dataframe["close_4h"] > dataframe["close"], "enter_long"] = 1
        return dataframe


@pytest.mark.parametrize("cheat", [Peeks, PeeksAtTheForming4h])
def test_the_lookahead_check_catches_a_dataframe_strategy_that_peeks(cheat):
    strategy = cheat()
    assert (strategy.signals(C) == ENTER_LONG).any()
    assert not check_lookahead(strategy, C, cuts=25).ok


def test_merge_informative_pair_joins_closed_candles_only():
    strategy = MergesProperly()
    assert (strategy.signals(C) == ENTER_LONG).any()
    assert check_lookahead(strategy, C, cuts=25).ok


def test_parameters_are_checked_against_their_declared_bounds():
    with pytest.raises(StrategyParamsError, match="buy_rsi: Input should be less than or equal"):
        RsiTrendPullback({"buy_rsi": 99})
    with pytest.raises(StrategyParamsError, match="extra: Extra inputs are not permitted"):
        RsiTrendPullback({"extra": 1})
    with pytest.raises(StrategyParamsError, match="ma: Input should be 'sma' or 'ema'"):
        SmaCrossoverFrame({"ma": "wma"})


def test_the_parameter_schema_shows_types_bounds_defaults_and_search_spaces():
    schema = RsiTrendPullback.parameter_schema()
    assert schema["additionalProperties"] is False
    buy = schema["properties"]["buy_rsi"]
    assert (buy["type"], buy["minimum"], buy["maximum"], buy["default"]) == ("integer", 10, 60, 35)
    assert buy["x-space"] == "buy"
    assert buy["x-optimize"] is True
    assert SmaCrossoverFrame.parameter_schema()["properties"]["ma"]["enum"] == ["sma", "ema"]


def _define(**attributes: Any) -> type:
    return type("Ported", (DataFrameStrategy,), attributes)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"can_short": True}, "can_short = True is not supported"),
        ({"custom_stoploss": lambda self: -0.1}, "custom_stoploss() is not supported"),
        ({"minimal_roi": {"0": 0.1, "30": 0.05}}, "steps after minute 0"),
        ({"stoploss": 0.1}, "stoploss is negative"),
        (
            {"stoploss": -0.1, "trailing_stop": True, "trailing_stop_positive": 0.01},
            "trailing_stop_positive",
        ),
    ],
)
def test_what_the_engine_cannot_run_is_refused_when_the_class_is_defined(attributes, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        _define(**attributes)


def test_freqtrades_trailing_stop_flag_trails_by_the_stoploss():
    ported = _define(stoploss=-0.07, trailing_stop=True, minimal_roi={"0": 100})()
    assert (ported.stop_loss(), ported.take_profit(), ported.trailing_stop()) == (0.07, None, 0.07)


def test_interface_2_buy_and_sell_columns_still_work():
    class Legacy(DataFrameStrategy):
        def populate_indicators(self, dataframe, metadata):
            dataframe["rsi"] = ta.RSI(dataframe, timeperiod=14)
            return dataframe

        def populate_buy_trend(self, dataframe, metadata):
            dataframe.loc[qtpylib.crossed_above(dataframe["rsi"], 30), "buy"] = 1
            return dataframe

        def populate_sell_trend(self, dataframe, metadata):
            dataframe.loc[qtpylib.crossed_above(dataframe["rsi"], 70), "sell"] = 1
            return dataframe

    signals = Legacy().signals(C)
    assert (signals == ENTER_LONG).any()
    assert (signals == EXIT_LONG).any()


def test_a_strategy_that_drops_rows_fails_with_the_step_named():
    class Drops(DataFrameStrategy):
        startup_candle_count = 3
        window = IntParameter(2, 10, default=3)

        def populate_indicators(self, dataframe, metadata):
            return dataframe.dropna().iloc[self.window.value :]

    with pytest.raises(ValueError, match="populate_indicators returned 1997 rows for 2000"):
        Drops().signals(C)
