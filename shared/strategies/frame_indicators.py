"""Indicators on pandas Series for DataFrame strategies: the few that freqtrade strategies
take from ``freqtrade.vendor.qtpylib.indicators`` (import this module as ``qtpylib``).

A cross follows the platform's rule (docs/trading.md): ``a[t] > b[t] and a[t-1] <= b[t-1]``,
False where either side is undefined. For everything else use TA-Lib, whose
``talib.abstract`` functions take a DataFrame (``ta.RSI(dataframe, timeperiod=14)``).
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import pandas as pd

__all__ = [
    "bollinger_bands",
    "crossed_above",
    "crossed_below",
    "rolling_mean",
    "typical_price",
]

SeriesLike: TypeAlias = pd.Series | np.ndarray | float | int


def _pair(a: SeriesLike, b: SeriesLike) -> tuple[pd.Series, pd.Series]:
    left = a if isinstance(a, pd.Series) else pd.Series(np.asarray(a, dtype=np.float64))
    right = (
        b
        if isinstance(b, pd.Series)
        else pd.Series(np.broadcast_to(np.asarray(b, dtype=np.float64), len(left)), left.index)
    )
    return left, right


def crossed_above(a: SeriesLike, b: SeriesLike) -> pd.Series:
    """True where ``a`` crosses above ``b``: above now, at or below on the candle before."""
    left, right = _pair(a, b)
    return (left > right) & (left.shift(1) <= right.shift(1))


def crossed_below(a: SeriesLike, b: SeriesLike) -> pd.Series:
    """True where ``a`` crosses below ``b``: below now, at or above on the candle before."""
    left, right = _pair(a, b)
    return (left < right) & (left.shift(1) >= right.shift(1))


def typical_price(frame: pd.DataFrame) -> pd.Series:
    """``(high + low + close) / 3``."""
    return (frame["high"] + frame["low"] + frame["close"]) / 3


def rolling_mean(series: pd.Series, window: int = 200, min_periods: int | None = None) -> pd.Series:
    """The mean of the last ``window`` values (NaN until ``min_periods``, default all)."""
    return series.rolling(window=window, min_periods=min_periods or window).mean()


def bollinger_bands(series: pd.Series, window: int = 20, stds: float = 2) -> pd.DataFrame:
    """Columns ``upper``, ``mid``, ``lower``: the rolling mean plus and minus ``stds``
    sample standard deviations (qtpylib's convention; TA-Lib's BBANDS uses the population
    one)."""
    mid = rolling_mean(series, window)
    spread = series.rolling(window=window).std() * stds
    return pd.DataFrame({"upper": mid + spread, "mid": mid, "lower": mid - spread})
