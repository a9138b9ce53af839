"""A strategy written for freqtrade, ported by changing its imports and base class only
(docs/trading.md, porting a freqtrade strategy): buy an RSI pullback while the price is
above its 4-hour trend, sell when the RSI is stretched, with freqtrade's stop loss and ROI.

The original's imports were::

    from freqtrade.strategy import IStrategy, IntParameter, informative
    import freqtrade.vendor.qtpylib.indicators as qtpylib

and its class line ``class RsiTrendPullback(IStrategy):``.
"""

from __future__ import annotations

from typing import Any

import talib.abstract as ta
from pandas import DataFrame

import shared.strategies.frame_indicators as qtpylib
from shared.strategies.dataframe import DataFrameStrategy, IntParameter, informative


class RsiTrendPullback(DataFrameStrategy):
    """RSI pullback in an uptrend: buy when the RSI turns up through buy_rsi while the last
    4-hour close is above its SMA; sell when the RSI crosses above sell_rsi."""

    INTERFACE_VERSION = 3
    timeframe = "1h"
    can_short = False

    minimal_roi = {"0": 0.08}  # noqa: RUF012 - freqtrade's spelling
    stoploss = -0.05
    startup_candle_count = 30

    buy_rsi = IntParameter(10, 60, default=35, space="buy")
    sell_rsi = IntParameter(50, 90, default=65, space="sell")
    trend_period = IntParameter(2, 50, default=12, space="buy")

    @informative("4h")
    def populate_indicators_4h(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["sma"] = ta.SMA(dataframe, timeperiod=self.trend_period.value)
        return dataframe

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["rsi"] = ta.RSI(dataframe, timeperiod=14)
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[
            (
                qtpylib.crossed_above(dataframe["rsi"], self.buy_rsi.value)
                & (dataframe["close_4h"] > dataframe["sma_4h"])
                & (dataframe["volume"] > 0)
            ),
            "enter_long",
        ] = 1
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe.loc[
            (
                qtpylib.crossed_above(dataframe["rsi"], self.sell_rsi.value)
                & (dataframe["volume"] > 0)
            ),
            "exit_long",
        ] = 1
        return dataframe
