"""Moving-average crossover: long when the fast average crosses above the slow one."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.candles import Candles, FloatArray
from shared.indicators import ema, sma
from shared.strategies.base import ENTER_LONG, EXIT_LONG, SignalArray, TradingStrategy


def crosses_above(a: FloatArray, b: FloatArray) -> np.ndarray:
    """``a[t] > b[t] and a[t-1] <= b[t-1]`` (docs/trading.md); False where either is undefined."""
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def crosses_below(a: FloatArray, b: FloatArray) -> np.ndarray:
    """``a[t] < b[t] and a[t-1] >= b[t-1]``; False where either is undefined."""
    out = np.zeros(a.shape[0], dtype=np.bool_)
    if a.shape[0] > 1:
        out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
    return out


class MACrossoverParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fast: int = Field(default=10, ge=1, le=10_000, description="Fast moving-average period.")
    slow: int = Field(default=30, ge=2, le=10_000, description="Slow moving-average period.")
    ma: Literal["sma", "ema"] = Field(default="sma", description="Kind of moving average.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MACrossoverParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class MACrossover(TradingStrategy):
    """Enter long when the fast MA crosses above the slow MA; exit on the cross below."""

    name = "ma_crossover"
    description = (
        "Moving-average crossover (SMA or EMA): buy when the fast average crosses above the "
        "slow one, sell when it crosses back below. Long only."
    )
    Params = MACrossoverParams
    params: MACrossoverParams

    @property
    def warmup(self) -> int:
        # The slow average is defined from candle slow-1; a cross needs the candle before.
        return self.params.slow

    def signals(self, candles: Candles) -> SignalArray:
        average = sma if self.params.ma == "sma" else ema
        fast = average(candles.close, self.params.fast)
        slow = average(candles.close, self.params.slow)
        out = np.zeros(len(candles), dtype=np.int8)
        out[crosses_above(fast, slow)] = ENTER_LONG
        out[crosses_below(fast, slow)] = EXIT_LONG
        return out
