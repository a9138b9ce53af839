"""Bodies of the backtest routes (docs/api.md, analysis service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from analysis_service.candle_input import CandleSource
from shared.validation import SINGLE_LINE, JsonObject

Status = Literal["queued", "running", "done", "failed"]
# A catalog name, as in a saved strategy (POST /trading/strategies).
StrategyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]


class BacktestCreate(CandleSource):
    """A backtest: a strategy and its parameters (the shape of a saved strategy), candles
    (or where to load them) and trading costs."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName
    parameters: JsonObject = Field(default_factory=dict)
    initial_capital: Decimal = Field(default=Decimal("10000"), gt=0, le=Decimal("1e12"))
    fee: float = Field(default=0.001, ge=0, lt=0.5, description="Fraction of notional per side.")
    slippage: float = Field(default=0.0, ge=0, lt=0.5, description="Fraction, against you.")
    position_size: float = Field(default=1.0, gt=0, le=1, description="Fraction of equity.")
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0, le=100)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)


class BacktestAccepted(BaseModel):
    id: uuid.UUID
    status: Status


class BacktestRead(BaseModel):
    id: uuid.UUID
    status: Status
    progress: float
    error: str | None
    strategy: str
    parameters: dict[str, Any]
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
    strategy: str
    parameters: dict[str, Any]
    symbol: str | None
    timeframe: str | None
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None
