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


MAX_PAIRS = 50


class BotCreate(BaseModel):
    """A bot of one ``symbol``, or with ``pairs`` a portfolio bot: one strategy over those
    pairs from one capital, at most ``max_open_positions`` positions, each of
    ``position_size`` x equity (default ``1 / max_open_positions``) or ``stake_amount``
    (docs/trading.md, portfolio bots)."""

    model_config = ConfigDict(extra="forbid")

    strategy_id: uuid.UUID | None = Field(default=None, description="A saved strategy.")
    optimisation_id: uuid.UUID | None = Field(
        default=None,
        description="Or a finished optimisation: its recommended parameters become a new "
        "saved strategy; its timeframe, exchange and stops apply where not given.",
    )
    name: Name | None = None
    exchange: ExchangeId = "sim"
    symbol: Symbol | None = None
    pairs: list[Symbol] | None = Field(default=None, min_length=1, max_length=MAX_PAIRS)
    timeframe: Timeframe = "1m"
    mode: Literal["paper", "live"] = "paper"
    capital: Amount
    position_size: PositionSize | None = None
    max_open_positions: int | None = Field(default=None, ge=1, le=MAX_PAIRS)
    stake_amount: Amount | None = None
    risk: RiskSettings = Field(default_factory=RiskSettings)

    @model_validator(mode="after")
    def _one_strategy_one_market_or_pairs(self) -> BotCreate:
        if (self.strategy_id is None) == (self.optimisation_id is None):
            raise ValueError("give either strategy_id or optimisation_id")
        if self.pairs is None:
            if self.symbol is None and self.optimisation_id is None:  # an optimisation's market
                raise ValueError("give symbol, or pairs for a portfolio bot")
            if self.max_open_positions is not None or self.stake_amount is not None:
                raise ValueError("max_open_positions and stake_amount need pairs")
            if self.position_size is None:
                self.position_size = Decimal(1)
            return self
        if self.symbol is not None and self.symbol != self.pairs[0]:
            raise ValueError("a portfolio bot's symbol is its first pair; give pairs only")
        if len(set(self.pairs)) != len(self.pairs):
            raise ValueError("a pair is listed twice")
        if len({pair.split("/")[1] for pair in self.pairs}) > 1:
            raise ValueError("the pairs must share one quote currency (the bot's capital)")
        if self.mode != "paper":
            raise ValueError("portfolio bots run in paper mode")
        self.symbol = self.pairs[0]
        if self.max_open_positions is None:
            self.max_open_positions = len(self.pairs)
        if self.max_open_positions > len(self.pairs):
            raise ValueError("max_open_positions is more than the pairs")
        if self.stake_amount is not None and self.position_size is not None:
            raise ValueError("give stake_amount or position_size, not both")
        if self.stake_amount is None and self.position_size is None:
            self.position_size = (Decimal(1) / self.max_open_positions).quantize(
                Decimal("0.00000001")
            )
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
    pairs: list[str] | None = None
    timeframe: str
    mode: str
    status: Literal["stopped", "running", "paused", "error"]
    capital: Money
    position_size: Money | None
    max_open_positions: int | None = None
    stake_amount: Money | None = None
    risk: dict[str, Any]
    last_signal: dict[str, Any] | None
    last_candle_at: datetime | None
    error: str | None
    paused_until: datetime | None = None  # a daily-loss pause ends then
    created_at: datetime
    updated_at: datetime
    position: PositionRead | None = None
    positions: list[PositionRead] | None = None  # a portfolio bot's, in pair order
    balances: dict[str, Money] = Field(default_factory=dict)
    equity: Money | None = None
    realized_pnl: Money | None = None
    pnl: Money | None = None
