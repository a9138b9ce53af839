"""SQL of the ``backtests`` table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, text, update
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


async def get_for_user(
    session: AsyncSession, backtest_id: uuid.UUID, user_id: uuid.UUID
) -> Backtest | None:
    """The user's job, its result (JSON text) included."""
    return await session.scalar(
        select(Backtest).where(Backtest.id == backtest_id, Backtest.user_id == user_id)
    )


async def list_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int, offset: int
) -> Sequence[Backtest]:
    """The user's jobs, newest first: the result (a long run's trades, megabytes) and the
    request stay in the database."""
    rows = await session.scalars(
        select(Backtest)
        .options(defer(Backtest.result), defer(Backtest.request))
        .where(Backtest.user_id == user_id)
        .order_by(Backtest.created_at.desc(), Backtest.id)
        .limit(limit)
        .offset(offset)
    )
    return rows.all()


async def count_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    """How many jobs the user has (the paging envelope's ``total``)."""
    total = await session.scalar(
        select(func.count()).select_from(Backtest).where(Backtest.user_id == user_id)
    )
    return int(total or 0)


def _idle(idle_ms: int) -> Any:
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, idle_ms / 1000)


def _abandoned(idle_ms: int) -> Any:
    """Running, but no heartbeat for ``idle_ms``: its worker died."""
    return (Backtest.status == "running") & or_(
        Backtest.heartbeat_at.is_(None), Backtest.heartbeat_at < _idle(idle_ms)
    )


async def claim(session: AsyncSession, backtest_id: uuid.UUID, *, idle_ms: int) -> Backtest | None:
    """Mark a queued (or abandoned running) job as running; None when it is finished or
    another worker runs it."""
    return await session.scalar(
        update(Backtest)
        .where(Backtest.id == backtest_id, (Backtest.status == "queued") | _abandoned(idle_ms))
        .values(
            status="running",
            progress=0.0,
            started_at=func.now(),
            heartbeat_at=func.now(),
            error=None,
        )
        .returning(Backtest)
    )


async def beat(session: AsyncSession, backtest_id: uuid.UUID) -> None:
    """The running job's heartbeat."""
    await session.execute(
        update(Backtest)
        .where(Backtest.id == backtest_id, Backtest.status == "running")
        .values(heartbeat_at=func.now())
    )


async def stale(session: AsyncSession, *, idle_ms: int, limit: int = 100) -> list[Backtest]:
    """Jobs queued for ``idle_ms`` or more, and running ones without a heartbeat for as
    long: either still waiting in the stream, or lost from it."""
    rows = await session.scalars(
        select(Backtest)
        .options(defer(Backtest.result), defer(Backtest.request))
        .where(
            ((Backtest.status == "queued") & (Backtest.created_at < _idle(idle_ms)))
            | _abandoned(idle_ms)
        )
        .order_by(Backtest.created_at)
        .limit(limit)
    )
    return list(rows.all())


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
    result: str | None,
    metrics: dict[str, Any] | None,
    error: str | None,
) -> None:
    values: dict[str, Any] = {
        "status": "done" if error is None else "failed",
        "result": result,
        "metrics": metrics,
        "error": error,
        "finished_at": func.now(),
    }
    if error is None:
        values["progress"] = 1.0
    await session.execute(update(Backtest).where(Backtest.id == backtest_id).values(**values))
