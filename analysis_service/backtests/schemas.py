"""Bodies of the backtest routes (docs/api.md, analysis service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["queued", "running", "done", "failed"]


class StrategyRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


class BacktestCreate(BaseModel):
    """A backtest: a strategy, candles (or where to load them) and trading costs."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyRef
    candles: list[list[float]] | None = Field(
        default=None, description="ccxt rows [ts_ms, o, h, l, c, v], oldest first."
    )
    exchange: str | None = Field(default=None, max_length=50)
    symbol: str | None = Field(default=None, max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")
    timeframe: str | None = Field(default=None, max_length=5)
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: Decimal = Field(default=Decimal("10000"), gt=0, le=Decimal("1e12"))
    fee: float = Field(default=0.001, ge=0, lt=0.5, description="Fraction of notional per side.")
    slippage: float = Field(default=0.0, ge=0, lt=0.5, description="Fraction, against you.")
    position_size: float = Field(default=1.0, gt=0, le=1, description="Fraction of equity.")
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0, le=100)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_source(self) -> BacktestCreate:
        if self.candles is not None:
            if self.symbol is not None:
                raise ValueError("send either candles or symbol/timeframe/start/end, not both")
            return self
        missing = [
            name for name in ("symbol", "timeframe", "start", "end") if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(
                "send candles, or symbol, timeframe, start and end to load them "
                f"(missing: {', '.join(missing)})"
            )
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class BacktestAccepted(BaseModel):
    id: uuid.UUID
    status: Status


class BacktestRead(BaseModel):
    id: uuid.UUID
    status: Status
    progress: float
    error: str | None
    strategy: StrategyRef
    exchange: str | None
    symbol: str | None
    timeframe: str | None
    start: datetime | None
    end: datetime | None
    settings: dict[str, Any]
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestSummary(BaseModel):
    id: uuid.UUID
    status: Status
    progress: float
    strategy: StrategyRef
    symbol: str | None
    timeframe: str | None
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None
