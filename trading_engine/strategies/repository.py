"""SQL of saved strategies, filtered on the owner."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Bot, Strategy


async def get(session: AsyncSession, user_id: uuid.UUID, strategy_id: uuid.UUID) -> Strategy | None:
    return await session.scalar(
        select(Strategy).where(Strategy.id == strategy_id, Strategy.user_id == user_id)
    )


def strategies_query(user_id: uuid.UUID) -> Select[Strategy]:
    """A user's saved strategies, oldest first."""
    return (
        select(Strategy)
        .where(Strategy.user_id == user_id)
        .order_by(Strategy.created_at, Strategy.id)
    )


async def add(session: AsyncSession, strategy: Strategy) -> Strategy:
    session.add(strategy)
    await session.flush()
    await session.refresh(strategy)
    return strategy


async def bots_using(session: AsyncSession, strategy_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Bot).where(Bot.strategy_id == strategy_id)
    )
    return int(count or 0)


async def delete(session: AsyncSession, strategy: Strategy) -> None:
    await session.delete(strategy)
    await session.flush()
