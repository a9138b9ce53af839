"""The moving-average crossover as a DataFrame strategy: the same trades as the built-in
``ma_crossover`` on the same candles and parameters (tested)."""

from __future__ import annotations

from typing import Any

import talib.abstract as ta
from pandas import DataFrame

from shared.strategies import frame_indicators as qtpylib
from shared.strategies.dataframe import CategoricalParameter, DataFrameStrategy, IntParameter


class SmaCrossoverFrame(DataFrameStrategy):
    """Moving-average crossover on a DataFrame: buy when the fast average crosses above the
    slow one, sell when it crosses back below. Long only."""

    name = "sma_crossover_frame"
    timeframe = "1h"

    fast = IntParameter(1, 200, default=10, space="buy")
    slow = IntParameter(2, 400, default=30, space="buy")
    ma = CategoricalParameter(["sma", "ema"], default="sma", space="buy")

    @property
    def warmup(self) -> int:
        # The slow average is defined from candle slow-1; a cross needs the candle before.
        # (A property rather than startup_candle_count: the warm-up follows a parameter.)
        return int(self.slow.value)

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        average = ta.SMA if self.ma.value == "sma" else ta.EMA
        dataframe["fast_ma"] = average(dataframe, timeperiod=self.fast.value)
        dataframe["slow_ma"] = average(dataframe, timeperiod=self.slow.value)
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[
            qtpylib.crossed_above(dataframe["fast_ma"], dataframe["slow_ma"]), "enter_long"
        ] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[
            qtpylib.crossed_below(dataframe["fast_ma"], dataframe["slow_ma"]), "exit_long"
        ] = 1
        return dataframe
