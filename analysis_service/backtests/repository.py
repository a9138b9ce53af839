"""SQL of the ``backtests`` table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.models import Backtest


async def add(session: AsyncSession, backtest: Backtest) -> Backtest:
    session.add(backtest)
    await session.flush()
    await session.refresh(backtest)
    return backtest


async def get(session: AsyncSession, backtest_id: uuid.UUID) -> Backtest | None:
    return await session.get(Backtest, backtest_id)


async def get_for_user(
    session: AsyncSession, backtest_id: uuid.UUID, user_id: uuid.UUID
) -> Backtest | None:
    return await session.scalar(
        select(Backtest).where(Backtest.id == backtest_id, Backtest.user_id == user_id)
    )


def backtests_query(user_id: uuid.UUID) -> Select[Backtest]:
    """A user's backtests, newest first."""
    return (
        select(Backtest)
        .where(Backtest.user_id == user_id)
        .order_by(Backtest.created_at.desc(), Backtest.id)
    )


async def claim(session: AsyncSession, backtest_id: uuid.UUID) -> Backtest | None:
    """Mark a queued (or abandoned running) job as running; None when already finished."""
    return await session.scalar(
        update(Backtest)
        .where(Backtest.id == backtest_id, Backtest.status.in_(("queued", "running")))
        .values(status="running", progress=0.0, started_at=func.now(), error=None)
        .returning(Backtest)
    )


async def set_progress(session: AsyncSession, backtest_id: uuid.UUID, progress: float) -> None:
    await session.execute(
        update(Backtest)
        .where(Backtest.id == backtest_id, Backtest.status == "running")
        .values(progress=func.greatest(Backtest.progress, progress))
    )


async def finish(
    session: AsyncSession,
    backtest_id: uuid.UUID,
    *,
    result: dict[str, Any] | None,
    error: str | None,
) -> None:
    values: dict[str, Any] = {
        "status": "done" if error is None else "failed",
        "result": result,
        "error": error,
        "finished_at": func.now(),
    }
    if error is None:
        values["progress"] = 1.0
    await session.execute(update(Backtest).where(Backtest.id == backtest_id).values(**values))
