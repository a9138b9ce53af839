"""SQL of balances and the wallet reset."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Balance, Bot, Order, Position


async def all_balances(session: AsyncSession, user_id: uuid.UUID) -> list[Balance]:
    rows = await session.scalars(
        select(Balance).where(Balance.user_id == user_id).order_by(Balance.asset)
    )
    return list(rows)


async def bots_of(session: AsyncSession, user_id: uuid.UUID) -> list[Bot]:
    rows = await session.scalars(select(Bot).where(Bot.user_id == user_id).order_by(Bot.created_at))
    return list(rows)


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
