"""ORM models of the analysis service (mirror the `# --- analysis service ---` migration
section; the foreign keys live in the migrations only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Float, Integer, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

MONEY = Numeric(20, 8)


class Backtest(Base):
    """One backtest job: what was asked (enough to reproduce it), its progress and result."""

    __tablename__ = "backtests"

    id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    strategy: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    exchange: Mapped[str | None] = mapped_column(String(50))
    symbol: Mapped[str | None] = mapped_column(String(20))
    pairs: Mapped[list[str] | None] = mapped_column(JSONB)  # a portfolio's, in priority order
    timeframe: Mapped[str | None] = mapped_column(String(10))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The result as the JSON text GET /analysis/backtests/{id} serves (megabytes for a long
    # run: never parsed again), its metrics on their own for the list.
    result: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Renewed by the worker running the job; a running job whose heartbeat is older than
    # BACKTEST_CLAIM_IDLE_MS was left by a dead replica and may be taken over.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PerformanceTrade(Base):
    """The analysis service's copy of one ``trade.executed`` event (docs/events.md)."""

    __tablename__ = "performance_trades"

    event_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    trade_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True))
    bot_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(MONEY)
    quantity: Mapped[Decimal] = mapped_column(MONEY)
    fee: Mapped[Decimal] = mapped_column(MONEY)
    pnl: Mapped[Decimal | None] = mapped_column(MONEY)
    executed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Optimisation(Base):
    """One optimisation run: the request, its progress and, once over, its result (the
    Optuna studies live in a Redis journal while it runs)."""

    __tablename__ = "optimisations"

    id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    strategy: Mapped[str] = mapped_column(String(100))
    objective: Mapped[str] = mapped_column(String(20))
    sampler: Mapped[str] = mapped_column(String(10))
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    space: Mapped[dict[str, Any]] = mapped_column(JSONB)
    exchange: Mapped[str | None] = mapped_column(String(50))
    symbol: Mapped[str | None] = mapped_column(String(20))
    timeframe: Mapped[str | None] = mapped_column(String(10))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trials_total: Mapped[int | None] = mapped_column(Integer)
    trials_done: Mapped[int] = mapped_column(Integer, server_default="0")
    progress: Mapped[float] = mapped_column(Float, server_default="0")
    fold: Mapped[int | None] = mapped_column(Integer)
    best_value: Mapped[float | None] = mapped_column(Float)
    best_params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OptimisationTrial(Base):
    """One trial of a finished optimisation (surplus trials, never evaluated, are left out)."""

    __tablename__ = "optimisation_trials"

    optimisation_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    fold: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(10))
    value: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
