"""Candles as columns of numpy arrays: the one shape strategies, indicators and the
backtest engine share (ccxt rows ``[ts_ms, o, h, l, c, v]`` convert in and out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
        """The first ``n`` candles (used to prove strategies never look ahead)."""
        return Candles(
            self.timestamp[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
        )

    def field(self, name: str) -> FloatArray:
        if name not in {"open", "high", "low", "close", "volume"}:
            raise KeyError(name)
        values: FloatArray = getattr(self, name)
        return values
