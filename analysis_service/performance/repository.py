"""SQL of ``performance_trades`` (the analysis copy of ``trade.executed``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import PerformanceTrade


async def record(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert one trade; False when this trade (or event) is already recorded."""
    inserted = await session.scalar(
        insert(PerformanceTrade)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(PerformanceTrade.trade_id)
    )
    return inserted is not None


async def fills_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    bot_id: uuid.UUID | None = None,
    since: datetime | None = None,
) -> Sequence[Row[uuid.UUID | None, str, Decimal | None, Decimal, datetime]]:
    """(bot_id, symbol, pnl, fee, executed_at) of the user's fills, oldest first."""
    query = (
        select(
            PerformanceTrade.bot_id,
            PerformanceTrade.symbol,
            PerformanceTrade.pnl,
            PerformanceTrade.fee,
            PerformanceTrade.executed_at,
        )
        .where(PerformanceTrade.user_id == user_id)
        .order_by(PerformanceTrade.executed_at, PerformanceTrade.trade_id)
    )
    if bot_id is not None:
        query = query.where(PerformanceTrade.bot_id == bot_id)
    if since is not None:
        query = query.where(PerformanceTrade.executed_at >= since)
    return (await session.execute(query)).all()
