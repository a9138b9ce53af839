"""SQL of orders, trades and positions, always filtered on the owning user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Order, Position, Trade
from trading_engine.money import ZERO

OPEN_STATUSES = ("open", "partially_filled")


async def insert_order(session: AsyncSession, values: dict[str, object]) -> Order | None:
    """INSERT ... ON CONFLICT (user_id, client_order_id) DO NOTHING: None for a repeat.

    A concurrent identical insert waits on the unique index until the first commits (then
    sees the conflict) or rolls back (then inserts): never two orders.
    """
    return await session.scalar(
        insert(Order)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_orders_user_client_order_id")
        .returning(Order)
    )


def add_order(session: AsyncSession, values: dict[str, object]) -> Order:
    """A new order written with the transaction's other rows at the next flush (its id is
    made here); for callers that know its client order id cannot exist yet."""
    now = datetime.now(UTC)
    order = Order(
        id=uuid.uuid4(),
        filled_quantity=ZERO,
        average_price=None,
        fee=ZERO,
        created_at=now,
        updated_at=now,
        **values,
    )
    session.add(order)
    return order


async def order_by_client_id(
    session: AsyncSession, user_id: uuid.UUID, client_order_id: str
) -> Order | None:
    return await session.scalar(
        select(Order).where(Order.user_id == user_id, Order.client_order_id == client_order_id)
    )


async def order_of_user(
    session: AsyncSession, user_id: uuid.UUID, order_id: uuid.UUID, *, lock: bool = False
) -> Order | None:
    query = select(Order).where(Order.id == order_id, Order.user_id == user_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


def orders_query(
    user_id: uuid.UUID,
    *,
    status: str | None = None,
    bot_id: uuid.UUID | None = None,
    symbol: str | None = None,
) -> Select[Any]:
    """A user's orders, newest first (``status="open"`` also takes partially filled), as
    plain rows, not ORM objects: a page is read and serialised, never changed, and
    building fifty tracked objects cost more than the query."""
    query = select(*Order.__table__.columns).where(Order.user_id == user_id)
    if status == "open":
        query = query.where(Order.status.in_(OPEN_STATUSES))
    elif status is not None:
        query = query.where(Order.status == status)
    if bot_id is not None:
        query = query.where(Order.bot_id == bot_id)
    if symbol is not None:
        query = query.where(Order.symbol == symbol)
    return query.order_by(Order.created_at.desc(), Order.id)


async def resting_paper_orders(
    session: AsyncSession, exchange: str, symbol: str, created_before: datetime
) -> list[Order]:
    """Open paper limit orders of a market, locked, skipping ones another worker holds."""
    rows = await session.scalars(
        select(Order)
        .where(
            Order.exchange == exchange,
            Order.symbol == symbol,
            Order.mode == "paper",
            Order.type == "limit",
            Order.status.in_(OPEN_STATUSES),
            Order.created_at <= created_before,
        )
        .order_by(Order.created_at)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def open_live_orders(session: AsyncSession, limit: int = 100) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.mode == "live", Order.status.in_(OPEN_STATUSES))
        .order_by(Order.updated_at)
        .limit(limit)
    )
    return list(rows)


def trades_query(
    user_id: uuid.UUID, *, bot_id: uuid.UUID | None = None, symbol: str | None = None
) -> Select[Any]:
    """A user's fills, newest first, as plain rows (as :func:`orders_query`)."""
    query = select(*Trade.__table__.columns).where(Trade.user_id == user_id)
    if bot_id is not None:
        query = query.where(Trade.bot_id == bot_id)
    if symbol is not None:
        query = query.where(Trade.symbol == symbol)
    return query.order_by(Trade.timestamp.desc(), Trade.id)


def positions_query(
    user_id: uuid.UUID, *, status: str | None = "open", bot_id: uuid.UUID | None = None
) -> Select[Position]:
    """A user's positions, newest first."""
    query = select(Position).where(Position.user_id == user_id)
    if status is not None:
        query = query.where(Position.status == status)
    if bot_id is not None:
        query = query.where(Position.bot_id == bot_id)
    return query.order_by(Position.opened_at.desc(), Position.id)


async def list_positions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: str | None = "open",
    bot_id: uuid.UUID | None = None,
) -> list[Position]:
    rows = await session.scalars(positions_query(user_id, status=status, bot_id=bot_id))
    return list(rows)


async def open_orders_of(session: AsyncSession, user_id: uuid.UUID) -> list[Order]:
    rows = await session.scalars(
        select(Order)
        .where(Order.user_id == user_id, Order.status.in_(OPEN_STATUSES))
        .order_by(Order.created_at)
    )
    return list(rows)
