"""Bodies of the exchanges, pairs and markets routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ClockRead(BaseModel):
    """An exchange clock that runs faster than the wall (the sim at SIM_SPEED > 1): its
    time for a wall-clock instant t is ``anchor + (t - anchor) * speed``."""

    speed: float
    anchor: datetime


class ExchangeRead(BaseModel):
    id: str
    default: bool
    status: str  # "up" | "down" (circuit breaker open)
    timeframes: list[str]
    # None when the exchange keeps wall-clock time (every real exchange)
    clock: ClockRead | None = None


class ExchangesRead(BaseModel):
    exchanges: list[ExchangeRead]


class TradingPairRead(BaseModel):
    symbol: str
    base: str
    quote: str | None
    exchange: str
    active: bool
    updated_at: datetime


class PairsRead(BaseModel):
    pairs: list[TradingPairRead]


class MarketsRead(BaseModel):
    exchange: str
    markets: dict[str, dict[str, Any]]
