"""SQL of balances and the wallet reset."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Balance, Bot, Order, Position


async def all_balances(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[Row[str, Decimal, Decimal, uuid.UUID | None]]:
    """Plain rows (asset, free, locked, bot_id): read for the balances page, never changed."""
    result = await session.execute(
        select(Balance.asset, Balance.free, Balance.locked, Balance.bot_id)
        .where(Balance.user_id == user_id)
        .order_by(Balance.asset)
    )
    return result.all()


async def bots_of(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[Row[uuid.UUID, str | None, str]]:
    """Plain rows (id, name, status) of the user's bots."""
    result = await session.execute(
        select(Bot.id, Bot.name, Bot.status).where(Bot.user_id == user_id).order_by(Bot.created_at)
    )
    return result.all()


async def cancel_wallet_orders(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(Order)
        .where(
            Order.user_id == user_id,
            Order.bot_id.is_(None),
            Order.mode == "paper",
            Order.status.in_(("open", "partially_filled")),
        )
        .values(status="canceled", reason="paper wallet reset", updated_at=at)
    )


async def close_wallet_positions(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(Position)
        .where(
            Position.user_id == user_id,
            Position.bot_id.is_(None),
            Position.mode == "paper",
            Position.status == "open",
        )
        .values(status="closed", closed_at=at, updated_at=at)
    )


async def delete_wallet(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        delete(Balance).where(Balance.user_id == user_id, Balance.bot_id.is_(None))
    )
