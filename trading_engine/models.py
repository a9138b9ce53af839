"""ORM models of the trading engine, in step with its section of migration 0001.

Foreign keys to ``users.id`` live in the migration only (services never import each
other's models).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, Numeric, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

MONEY = Numeric(20, 8, asdecimal=True)


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(
        PgUUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Strategy(Base):
    """A user's saved strategy configuration."""

    __tablename__ = "strategies"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    name: Mapped[str] = mapped_column(String(100))
    strategy: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Bot(Base):
    """User + strategy + market + mode + capital + risk settings."""

    __tablename__ = "bots"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    strategy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("strategies.id"))
    name: Mapped[str | None] = mapped_column(String(100))
    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    timeframe: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(10), server_default="stopped")
    capital: Mapped[Decimal] = mapped_column(MONEY)
    position_size: Mapped[Decimal] = mapped_column(MONEY, server_default="1")
    risk: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    last_signal: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_candle_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # A bot paused by its daily loss limit resumes then (migration 0003).
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A portfolio bot's pairs, in entry-priority order (``symbol`` is the first), its cap
    # on open positions and fixed stake (migration 0009; null for a bot of one symbol).
    pairs: Mapped[list[str] | None] = mapped_column(JSONB)
    max_open_positions: Mapped[int | None] = mapped_column(Integer)
    stake_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Balance(Base):
    """One asset of the user's paper wallet (``bot_id`` NULL) or of a bot."""

    __tablename__ = "balances"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(20))
    free: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    locked: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    updated_at: Mapped[datetime] = _now()


# An order in one of these never changes again.
ORDER_FINAL_STATUSES = frozenset({"filled", "canceled", "rejected"})


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"))
    client_order_id: Mapped[str] = mapped_column(String(64))
    exchange_order_id: Mapped[str | None] = mapped_column(String(100))
    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(5))
    quantity: Mapped[Decimal] = mapped_column(MONEY)
    price: Mapped[Decimal | None] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    average_price: Mapped[Decimal | None] = mapped_column(MONEY)
    fee: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    fee_currency: Mapped[str | None] = mapped_column(String(20))
    fee_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Trade(Base):
    """One fill (the original design's ``trades`` table, side 'BUY' | 'SELL')."""

    __tablename__ = "trades"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal] = mapped_column(MONEY)
    quantity: Mapped[Decimal] = mapped_column(MONEY)
    timestamp: Mapped[datetime] = _now()
    strategy_name: Mapped[str | None] = mapped_column(String(100))
    pnl: Mapped[Decimal | None] = mapped_column(MONEY)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"))
    exchange: Mapped[str] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(5))
    fee: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    fee_currency: Mapped[str | None] = mapped_column(String(20))
    liquidity: Mapped[str | None] = mapped_column(String(5))


class Position(Base):
    """An open (or closed) long spot position of the wallet or of a bot."""

    __tablename__ = "positions"

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    bot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bots.id", ondelete="SET NULL"))
    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(5))
    quantity: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    average_entry_price: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    fees: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    highest_price: Mapped[Decimal | None] = mapped_column(MONEY)
    cost_basis: Mapped[Decimal] = mapped_column(MONEY, server_default="0")
    status: Mapped[str] = mapped_column(String(6), server_default="open")
    opened_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
