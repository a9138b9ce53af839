"""RSI divergence.

Definitions (``w`` = ``pivot_window``, ``L`` = ``lookback``):

- A *pivot low* at candle ``p`` is a candle whose low is the lowest of the ``2w + 1``
  candles ``p - w .. p + w`` (the earliest one wins a tie). It is only known once candle
  ``p + w`` has closed, so it is *confirmed* at ``t = p + w`` and the signal is emitted on
  that candle, never earlier (no look-ahead). Pivot highs mirror this with highs.
- *Bullish divergence* (ENTER_LONG at ``t``): the pivot low ``p`` confirmed at ``t`` and
  the most recent earlier pivot low ``q`` with ``w <= p - q <= L`` satisfy
  ``low[p] < low[q]`` (price makes a lower low), ``rsi[p] > rsi[q]`` (RSI makes a higher
  low) and ``rsi[q] < oversold`` (the first RSI low is below the oversold line).
- *Bearish divergence* (EXIT_LONG at ``t``): pivot highs ``q`` then ``p`` with
  ``high[p] > high[q]``, ``rsi[p] < rsi[q]`` and ``rsi[q] > overbought``.

RSI is Wilder's RSI (TA-Lib) of the close; pivots where it is undefined are skipped.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.candles import Candles, FloatArray
from shared.indicators import rsi
from shared.strategies.base import ENTER_LONG, EXIT_LONG, SignalArray, TradingStrategy


class RSIDivergenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: int = Field(default=14, ge=2, le=1000, description="RSI period.")
    pivot_window: int = Field(
        default=3, ge=1, le=100, description="Candles on each side that make a pivot."
    )
    lookback: int = Field(
        default=40, ge=2, le=2000, description="Most candles between the two pivots compared."
    )
    oversold: float = Field(default=35.0, gt=0, lt=100, description="Oversold RSI line.")
    overbought: float = Field(default=65.0, gt=0, lt=100, description="Overbought RSI line.")

    @model_validator(mode="after")
    def _ordered(self) -> RSIDivergenceParams:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be below overbought")
        if self.lookback < self.pivot_window:
            raise ValueError("lookback must be at least pivot_window")
        return self


def pivots(values: FloatArray, window: int, *, lows: bool) -> npt.NDArray[np.int64]:
    """Indices ``p`` whose value is the extreme of ``p - window .. p + window``."""
    n = values.shape[0]
    span = 2 * window + 1
    if n < span:
        return np.zeros(0, dtype=np.int64)
    view = sliding_window_view(values, span)
    extreme = view.argmin(axis=1) if lows else view.argmax(axis=1)
    centre = np.nonzero(extreme == window)[0]
    return (centre + window).astype(np.int64)


def _divergences(
    price: FloatArray,
    osc: FloatArray,
    found: npt.NDArray[np.int64],
    window: int,
    lookback: int,
    *,
    bullish: bool,
    line: float,
) -> list[int]:
    """Confirmation candles (``p + window``) of the divergences among ``found`` pivots."""
    hits: list[int] = []
    for i in range(1, found.shape[0]):
        p = int(found[i])
        if np.isnan(osc[p]):
            continue
        for j in range(i - 1, -1, -1):  # the most recent earlier pivot in range
            q = int(found[j])
            if p - q < window:
                continue
            if p - q > lookback or np.isnan(osc[q]):
                break
            if bullish:
                ok = price[p] < price[q] and osc[p] > osc[q] and osc[q] < line
            else:
                ok = price[p] > price[q] and osc[p] < osc[q] and osc[q] > line
            if ok:
                hits.append(p + window)
            break
    return hits


class RSIDivergence(TradingStrategy):
    name = "rsi_divergence"
    description = (
        "RSI divergence: buy when price makes a lower low while RSI makes a higher low from "
        "below the oversold line; sell on the mirror (higher high, lower RSI high from above "
        "overbought). Pivots are confirmed pivot_window candles later."
    )
    Params = RSIDivergenceParams
    params: RSIDivergenceParams
    __doc__ = __doc__

    @property
    def warmup(self) -> int:
        return self.params.period + 2 * self.params.pivot_window + 1

    def signals(self, candles: Candles) -> SignalArray:
        p = self.params
        osc = rsi(candles.close, p.period)
        out = np.zeros(len(candles), dtype=np.int8)
        lows = pivots(candles.low, p.pivot_window, lows=True)
        highs = pivots(candles.high, p.pivot_window, lows=False)
        enter = _divergences(
            candles.low, osc, lows, p.pivot_window, p.lookback, bullish=True, line=p.oversold
        )
        leave = _divergences(
            candles.high,
            osc,
            highs,
            p.pivot_window,
            p.lookback,
            bullish=False,
            line=p.overbought,
        )
        out[np.asarray(enter, dtype=np.int64)] = ENTER_LONG
        out[np.asarray(leave, dtype=np.int64)] = EXIT_LONG
        return out
