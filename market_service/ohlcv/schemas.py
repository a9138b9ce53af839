"""OHLCV body: ccxt rows ``[ts_ms, open, high, low, close, volume]``."""

from __future__ import annotations

from pydantic import BaseModel


class OhlcvRead(BaseModel):
    exchange: str
    symbol: str
    timeframe: str
    candles: list[list[float]]
