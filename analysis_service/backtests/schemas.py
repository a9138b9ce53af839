"""Bodies of the backtest routes (docs/api.md, analysis service)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.validation import SINGLE_LINE, JsonObject, UtcDatetime

Status = Literal["queued", "running", "done", "failed"]
# A catalog name, as in a saved strategy (POST /trading/strategies).
StrategyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
ShortId = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=SINGLE_LINE)]
CandleRows = Annotated[
    list[list[float]],
    Field(max_length=200_000, description="ccxt rows [ts_ms, o, h, l, c, v], oldest first."),
]


class BacktestCreate(BaseModel):
    """A backtest: a strategy and its parameters (the shape of a saved strategy), candles
    (or where to load them) and trading costs."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName
    parameters: JsonObject = Field(default_factory=dict)
    candles: CandleRows | None = None
    exchange: ShortId | None = None
    symbol: str | None = Field(default=None, max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")
    timeframe: Annotated[str, StringConstraints(max_length=5, pattern=SINGLE_LINE)] | None = None
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
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
        if self.end is not None and self.end > datetime.now(UTC):
            raise ValueError("end lies in the future: a backtest runs on closed candles only")
        return self


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
