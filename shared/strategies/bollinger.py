"""Bollinger Bands mean reversion."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.candles import Candles
from shared.indicators import bbands
from shared.strategies.base import ENTER_LONG, EXIT_LONG, SignalArray, TradingStrategy


class BollingerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: int = Field(default=20, ge=2, le=10_000, description="Moving-average period.")
    k: float = Field(default=2.0, gt=0, le=10, description="Band width in standard deviations.")


class BollingerBands(TradingStrategy):
    """Long when the close comes back inside after piercing the lower band.

    Enter on candle t when ``close[t-1] < lower[t-1]`` and ``close[t] >= lower[t]``; exit
    when ``close[t-1] > upper[t-1]`` and ``close[t] <= upper[t]``. Bands are TA-Lib BBANDS
    (SMA middle, population standard deviation).
    """

    name = "bollinger_bands"
    description = (
        "Bollinger Bands mean reversion: buy when the close moves back inside the bands after "
        "piercing the lower band, sell when it moves back inside after piercing the upper band."
    )
    Params = BollingerParams
    params: BollingerParams

    @property
    def warmup(self) -> int:
        return self.params.period

    def signals(self, candles: Candles) -> SignalArray:
        close = candles.close
        upper, _, lower = bbands(close, self.params.period, self.params.k)
        out = np.zeros(len(candles), dtype=np.int8)
        if len(candles) > 1:
            back_above_lower = (close[:-1] < lower[:-1]) & (close[1:] >= lower[1:])
            back_below_upper = (close[:-1] > upper[:-1]) & (close[1:] <= upper[1:])
            out[1:][back_above_lower] = ENTER_LONG
            out[1:][back_below_upper] = EXIT_LONG
        return out
