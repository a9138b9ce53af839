"""ORM models of the analysis service (mirror the `# --- analysis service ---` migration
section; the foreign key to ``users`` lives in the migration only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Float, Numeric, String, Text, func, text
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
