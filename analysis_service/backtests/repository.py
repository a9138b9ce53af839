"""SQL of the ``backtests`` table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Text, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from analysis_service.models import Backtest


async def add(session: AsyncSession, backtest: Backtest) -> Backtest:
    session.add(backtest)
    await session.flush()
    await session.refresh(backtest)
    return backtest


async def lock_user_jobs(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise job creation of one user until the transaction ends, across replicas
    (a transaction-level advisory lock on the user id), so the count below stays true."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"backtests:{user_id}"},
    )


async def count_active_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    """The user's jobs still queued or running."""
    count = await session.scalar(
        select(func.count())
        .select_from(Backtest)
        .where(Backtest.user_id == user_id, Backtest.status.in_(("queued", "running")))
    )
    return int(count or 0)


async def get(session: AsyncSession, backtest_id: uuid.UUID) -> Backtest | None:
    return await session.get(Backtest, backtest_id)


async def get_for_user_result_text(
    session: AsyncSession, backtest_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Backtest, str | None] | None:
    """The user's job with its result as JSON text (parsed by the caller, off the event
    loop: a long run's result is megabytes)."""
    found = (
        await session.execute(
            select(Backtest, Backtest.result.cast(Text))
            .options(defer(Backtest.result))
            .where(Backtest.id == backtest_id, Backtest.user_id == user_id)
        )
    ).first()
    return None if found is None else (found[0], found[1])


async def list_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, offset: int
) -> Sequence[tuple[Backtest, dict[str, Any] | None]]:
    """The user's jobs, newest first, each with its ``result.metrics``: the result itself
    (a long run's trades, megabytes) and the request stay in the database."""
    rows = await session.execute(
        select(Backtest, Backtest.result["metrics"])
        .options(defer(Backtest.result), defer(Backtest.request))
        .where(Backtest.user_id == user_id)
        .order_by(Backtest.created_at.desc(), Backtest.id)
    )
    return [(row, metrics) for row, metrics in rows.all()]


async def count_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    """How many jobs the user has (the paging envelope's ``total``)."""
    total = await session.scalar(
        select(func.count()).select_from(Backtest).where(Backtest.user_id == user_id)
    )
    return int(total or 0)


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
