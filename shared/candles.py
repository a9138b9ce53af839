"""Candles as columns of numpy arrays: the one shape strategies, indicators and the
backtest engine share (ccxt rows ``[ts_ms, o, h, l, c, v]`` convert in and out).

Candles may carry the closed candles of higher timeframes of the same market
(:class:`HigherCandles`, docs/trading.md, several timeframes), each with the count of
them that had closed by the close of every candle, so a prefix of the candles (what a
strategy saw at that time) carries exactly the higher candles known then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candles:
    timestamp: IntArray  # epoch milliseconds, UTC, strictly increasing
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    # Closed candles of higher timeframes, by timeframe ("4h"); see shared/resample.py.
    higher: Mapping[str, HigherCandles] = field(
        default_factory=dict, compare=False, repr=False, kw_only=True
    )

    def __len__(self) -> int:
        return int(self.close.shape[0])

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]]) -> Candles:
        """From ccxt OHLCV rows ``[ts_ms, open, high, low, close, volume]``."""
        array = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        return cls(
            timestamp=array[:, 0].astype(np.int64),
            open=np.ascontiguousarray(array[:, 1]),
            high=np.ascontiguousarray(array[:, 2]),
            low=np.ascontiguousarray(array[:, 3]),
            close=np.ascontiguousarray(array[:, 4]),
            volume=np.ascontiguousarray(array[:, 5]),
        )

    def to_rows(self) -> list[list[float]]:
        return [
            [int(t), float(o), float(h), float(lo), float(c), float(v)]
            for t, o, h, lo, c, v in zip(
                self.timestamp,
                self.open,
                self.high,
                self.low,
                self.close,
                self.volume,
                strict=True,
            )
        ]

    def head(self, n: int) -> Candles:
        """The first ``n`` candles, with the higher candles closed by then (used to prove
        strategies never look ahead)."""
        return Candles(
            self.timestamp[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
            higher={tf: higher.head(n) for tf, higher in self.higher.items()},
        )

    def field(self, name: str) -> FloatArray:
        if name not in {"open", "high", "low", "close", "volume"}:
            raise KeyError(name)
        values: FloatArray = getattr(self, name)
        return values


@dataclass(frozen=True)
class HigherCandles:
    """Closed candles of a higher timeframe as a strategy on the lower one sees them.

    ``visible[i]`` is how many of ``candles`` had closed by the close of the lower
    timeframe's candle ``i``: a higher candle opening at ``T`` closes at ``T + frame``
    and is visible from the lower candle whose close is at or after that moment, never
    before (no look-ahead). ``candles`` holds no candle that is visible nowhere.
    """

    timeframe: str
    candles: Candles
    visible: IntArray

    def head(self, n: int) -> HigherCandles:
        """What the first ``n`` lower candles see."""
        visible = self.visible[:n]
        known = int(visible[-1]) if visible.shape[0] else 0
        return HigherCandles(self.timeframe, self.candles.head(known), visible)

    def align(self, values: FloatArray) -> FloatArray:
        """Per lower candle, the value of the last higher candle visible at its close
        (``values`` has one per higher candle); NaN before the first one closed."""
        out = np.full(self.visible.shape[0], np.nan, dtype=np.float64)
        seen = self.visible > 0
        out[seen] = values[self.visible[seen] - 1]
        return out
