"""Bodies of the optimisation routes (docs/api.md, analysis service)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from analysis_service.backtests.schemas import StrategyName
from analysis_service.candle_input import CandleSource
from shared.validation import SINGLE_LINE, JsonObject

Status = Literal["queued", "running", "done", "failed", "cancelled"]
Objective = Literal["sharpe", "sortino", "total_return", "calmar", "profit_factor"]
Sampler = Literal["tpe", "random", "grid", "cmaes"]
ParamName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
Text = Annotated[str, StringConstraints(max_length=200, pattern=SINGLE_LINE)]
Choice = Text | float | bool | None
Number = Annotated[float, Field(allow_inf_nan=False)]


class ParamRange(BaseModel):
    """The values one parameter may take: ``low``..``high`` (with a ``step`` or on a
    ``log`` scale), or ``choices``; ``{}`` takes the bounds of the strategy's schema."""

    model_config = ConfigDict(extra="forbid")

    low: Number | None = None
    high: Number | None = None
    step: Number | None = Field(default=None, gt=0)
    log: bool = False
    choices: list[Choice] | None = Field(default=None, max_length=1000)


class WalkForward(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folds: int = Field(ge=2, le=20, description="Training/test window pairs, in time order.")
    anchored: bool = Field(
        default=False, description="Every training window starts at the first candle."
    )


StopValue = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] | ParamRange | None


class StudySettings(BaseModel):
    """What to search and how to score it: every field of a request but the candles."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName
    parameters: JsonObject = Field(
        default_factory=dict, description="Fixed parameters (may hold {placeholders})."
    )
    space: dict[ParamName, ParamRange] = Field(
        default_factory=dict, max_length=50, description="Searched parameters."
    )
    initial_capital: Decimal = Field(default=Decimal("10000"), gt=0, le=Decimal("1e12"))
    fee: float = Field(default=0.001, ge=0, lt=0.5, description="Fraction of notional per side.")
    slippage: float = Field(default=0.0, ge=0, lt=0.5, description="Fraction, against you.")
    position_size: float = Field(default=1.0, gt=0, le=1, description="Fraction of equity.")
    stop_loss: StopValue = None
    take_profit: StopValue = None
    trailing_stop: StopValue = None
    objective: Objective = "sharpe"
    min_trades: int = Field(
        default=5, ge=0, le=1_000_000, description="Fewer trades than this fail the trial."
    )
    n_trials: int | None = Field(
        default=None, ge=1, le=100_000, description="Trials per study (per fold)."
    )
    timeout_s: float | None = Field(
        default=None, ge=1, le=7 * 24 * 3600, description="Time budget of the whole run."
    )
    sampler: Sampler = "tpe"
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    walk_forward: WalkForward | None = None

    @model_validator(mode="after")
    def _bounded(self) -> StudySettings:
        if self.n_trials is None and self.timeout_s is None:
            self.n_trials = 100
        for name in ("stop_loss", "trailing_stop"):
            value = getattr(self, name)
            if isinstance(value, float) and value >= 1:
                raise ValueError(f"{name} is a fraction below 1 (got {value})")
        return self

    def stops(self) -> dict[str, Any]:
        return {
            "stop_loss": _dump(self.stop_loss),
            "take_profit": _dump(self.take_profit),
            "trailing_stop": _dump(self.trailing_stop),
        }


def _dump(value: Any) -> Any:
    return value.model_dump(exclude_defaults=True) if isinstance(value, ParamRange) else value


class OptimisationCreate(StudySettings, CandleSource):
    """An optimisation: the study settings and the candles (posted, or where to load them)."""

    def settings(self) -> StudySettings:
        return StudySettings.model_validate(
            self.model_dump(include=set(StudySettings.model_fields))
        )


class OptimisationAccepted(BaseModel):
    id: uuid.UUID
    status: Status


class Progress(BaseModel):
    trials_done: int
    trials_total: int | None
    fraction: float
    fold: int | None
    best_value: float | None
    best_params: dict[str, Any] | None


class OptimisationRead(BaseModel):
    id: uuid.UUID
    status: Status
    error: str | None
    strategy: str
    objective: str
    sampler: str
    space: dict[str, Any]
    exchange: str | None
    symbol: str | None
    timeframe: str | None
    start: datetime | None
    end: datetime | None
    settings: dict[str, Any]
    progress: Progress
    best_params: dict[str, Any] | None
    best_value: float | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class OptimisationSummary(BaseModel):
    id: uuid.UUID
    status: Status
    strategy: str
    objective: str
    symbol: str | None
    timeframe: str | None
    progress: Progress
    best_params: dict[str, Any] | None
    best_value: float | None
    created_at: datetime
    finished_at: datetime | None


class TrialRead(BaseModel):
    fold: int
    number: int
    state: Literal["complete", "failed", "error", "lost"]
    value: float | None
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    note: str | None
    duration_s: float | None


class BestParameters(BaseModel):
    """What a bot needs from a finished optimisation (the trading engine asks for it)."""

    id: uuid.UUID
    strategy: str
    parameters: dict[str, Any]
    stops: dict[str, float | None]
    value: float | None
    objective: str
    symbol: str | None
    timeframe: str | None
    exchange: str | None
