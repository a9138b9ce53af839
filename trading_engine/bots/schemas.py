"""Shapes of the bots API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trading_engine.orders.schemas import ExchangeId, Money, PositionRead, Symbol
from trading_engine.risk.rules import RiskSettings

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"]


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy_id: uuid.UUID
    name: str | None = Field(default=None, max_length=100)
    exchange: ExchangeId = "sim"
    symbol: Symbol
    timeframe: Timeframe = "1m"
    mode: Literal["paper", "live"] = "paper"
    capital: Decimal = Field(gt=0, max_digits=20, decimal_places=8)
    position_size: Decimal = Field(default=Decimal(1), gt=0, le=1)
    risk: RiskSettings = Field(default_factory=RiskSettings)


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    risk: RiskSettings | None = None
    position_size: Decimal | None = Field(default=None, gt=0, le=1)
    strategy_id: uuid.UUID | None = None


class BotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    strategy_id: uuid.UUID
    strategy: str | None = None
    name: str | None
    exchange: str
    symbol: str
    timeframe: str
    mode: str
    status: Literal["stopped", "running", "paused", "error"]
    capital: Money
    position_size: Money
    risk: dict[str, Any]
    last_signal: dict[str, Any] | None
    last_candle_at: datetime | None
    error: str | None
    paused_until: datetime | None = None  # a daily-loss pause ends then
    created_at: datetime
    updated_at: datetime
    position: PositionRead | None = None
    balances: dict[str, Money] = Field(default_factory=dict)
    equity: Money | None = None
    realized_pnl: Money | None = None
    pnl: Money | None = None
