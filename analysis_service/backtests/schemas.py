"""Bodies of the backtest routes (docs/api.md, analysis service)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from analysis_service.candle_input import CandleRows, ShortId
from shared.validation import SINGLE_LINE, JsonObject, UtcDatetime

Status = Literal["queued", "running", "done", "failed"]
# A catalog name, as in a saved strategy (POST /trading/strategies).
StrategyName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SINGLE_LINE)]
Pair = Annotated[str, StringConstraints(max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")]
MAX_PAIRS = 200


class BacktestCreate(BaseModel):
    """A backtest: a strategy and its parameters (the shape of a saved strategy), candles
    (or where to load them) and trading costs. With ``pairs`` (or ``candles`` as an object
    of pair -> rows) it is a portfolio backtest: the pairs share the capital
    (docs/trading.md, portfolio backtests)."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName
    parameters: JsonObject = Field(default_factory=dict)
    candles: CandleRows | dict[Pair, CandleRows] | None = Field(
        default=None,
        description="Rows of one pair, or for a portfolio an object of pair -> rows "
        "(in entry-priority order).",
    )
    exchange: ShortId | None = None
    symbol: Pair | None = None
    pairs: list[Pair] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PAIRS,
        description="A portfolio over these pairs, in entry-priority order (loaded like symbol).",
    )
    timeframe: Annotated[str, StringConstraints(max_length=5, pattern=SINGLE_LINE)] | None = None
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    initial_capital: Decimal = Field(default=Decimal("10000"), gt=0, le=Decimal("1e12"))
    fee: float = Field(default=0.001, ge=0, lt=0.5, description="Fraction of notional per side.")
    slippage: float = Field(default=0.0, ge=0, lt=0.5, description="Fraction, against you.")
    position_size: float | None = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Fraction of equity per position (a portfolio's default: "
        "1 / max_open_positions; null with stake_amount).",
    )
    max_open_positions: int | None = Field(
        default=None, ge=1, le=MAX_PAIRS, description="Portfolio: most positions open at once."
    )
    stake_amount: Decimal | None = Field(
        default=None,
        gt=0,
        le=Decimal("1e12"),
        description="Portfolio: a fixed stake per position (quote currency), not position_size.",
    )
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0, le=100)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)

    @property
    def portfolio(self) -> bool:
        return self.pairs is not None

    @model_validator(mode="after")
    def _one_source(self) -> BacktestCreate:
        self._portfolio_settings()
        if self.candles is not None:
            if self.symbol is not None:
                raise ValueError("send either candles or symbol/timeframe/start/end, not both")
            return self
        missing = [name for name in ("timeframe", "start", "end") if getattr(self, name) is None]
        if self.symbol is None and self.pairs is None:
            missing.insert(0, "symbol")
        if missing:
            raise ValueError(
                "send candles, or symbol (or pairs), timeframe, start and end to load them "
                f"(missing: {', '.join(missing)})"
            )
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        if self.end is not None and self.end > datetime.now(UTC):
            raise ValueError("end lies in the future: a job runs on closed candles only")
        return self

    def _portfolio_settings(self) -> None:
        """Settle what makes a portfolio (``pairs``, filled from the candles' keys) and
        its stake, so the stored request says exactly what runs."""
        if isinstance(self.candles, dict):
            if self.pairs is not None and self.pairs != list(self.candles):
                raise ValueError("pairs must list the pairs of candles, in the same order")
            if not self.candles:
                raise ValueError("candles holds no pair")
            if len(self.candles) > MAX_PAIRS:
                raise ValueError(f"at most {MAX_PAIRS} pairs in a portfolio")
            self.pairs = list(self.candles)
        elif self.pairs is not None and self.candles is not None:
            raise ValueError("for a portfolio send candles as an object of pair -> rows")
        if self.pairs is None:
            if self.max_open_positions is not None or self.stake_amount is not None:
                raise ValueError("max_open_positions and stake_amount need a portfolio (pairs)")
            if self.position_size is None:
                raise ValueError("position_size must be a fraction above 0 and at most 1")
            return
        if self.symbol is not None:
            raise ValueError("send symbol or pairs, not both")
        if len(set(self.pairs)) != len(self.pairs):
            raise ValueError("a pair is listed twice")
        if self.max_open_positions is None:
            self.max_open_positions = len(self.pairs)
        if self.max_open_positions > len(self.pairs):
            raise ValueError(
                f"max_open_positions ({self.max_open_positions}) is more than the pairs "
                f"({len(self.pairs)})"
            )
        if self.stake_amount is not None:
            if "position_size" in self.model_fields_set and self.position_size is not None:
                raise ValueError("send stake_amount or position_size, not both")
            self.position_size = None
        elif "position_size" not in self.model_fields_set or self.position_size is None:
            self.position_size = 1.0 / self.max_open_positions


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
    pairs: list[str] | None = Field(description="A portfolio's pairs, in priority order.")
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
    pairs: list[str] | None
    timeframe: str | None
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None
