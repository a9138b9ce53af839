"""Shapes of the bots API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.validation import Amount, Name
from trading_engine.orders.schemas import ExchangeId, Money, PositionRead, Symbol
from trading_engine.risk.rules import RiskSettings

# The share of the bot's balance each entry uses.
PositionSize = Annotated[Decimal, Field(gt=0, le=1, max_digits=9, decimal_places=8)]

Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w"]


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy_id: uuid.UUID | None = Field(default=None, description="A saved strategy.")
    optimisation_id: uuid.UUID | None = Field(
        default=None,
        description="Or a finished optimisation: its recommended parameters become a new "
        "saved strategy; its timeframe, exchange and stops apply where not given.",
    )
    name: Name | None = None
    exchange: ExchangeId = "sim"
    symbol: Symbol
    timeframe: Timeframe = "1m"
    mode: Literal["paper", "live"] = "paper"
    capital: Amount
    position_size: PositionSize = Decimal(1)
    risk: RiskSettings = Field(default_factory=RiskSettings)

    @model_validator(mode="after")
    def _one_strategy(self) -> BotCreate:
        if (self.strategy_id is None) == (self.optimisation_id is None):
            raise ValueError("give either strategy_id or optimisation_id")
        return self


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    risk: RiskSettings | None = None
    position_size: PositionSize | None = None
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
