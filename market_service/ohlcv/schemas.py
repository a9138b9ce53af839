"""OHLCV body: ccxt rows ``[ts_ms, open, high, low, close, volume]``."""

from __future__ import annotations

from pydantic import BaseModel

# [ts_ms, open, high, low, close, volume]: the time an integer, as in every other route.
CandleRow = tuple[int, float, float, float, float, float]


class OhlcvRead(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    candles: list[CandleRow]
