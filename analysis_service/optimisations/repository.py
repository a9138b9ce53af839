"""SQL of the ``optimisations`` and ``optimisation_trials`` tables."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Select, Text, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from analysis_service.models import Optimisation, OptimisationTrial

ACTIVE = ("queued", "running")


async def add(session: AsyncSession, row: Optimisation) -> Optimisation:
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def lock_user_jobs(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise the creation of one user's runs until the transaction ends (across
    replicas), so the count below stays true."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"optimisations:{user_id}"},
    )


async def count_active_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Optimisation)
        .where(Optimisation.user_id == user_id, Optimisation.status.in_(ACTIVE))
    )
    return int(count or 0)


async def get_for_user(
    session: AsyncSession, optimisation_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Optimisation | None:
    query = select(Optimisation).where(
        Optimisation.id == optimisation_id, Optimisation.user_id == user_id
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def get_for_user_result_text(
    session: AsyncSession, optimisation_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Optimisation, str | None] | None:
    """The user's run with its result as JSON text (parsed by the caller, off the loop)."""
    found = (
        await session.execute(
            select(Optimisation, Optimisation.result.cast(Text))
            .options(defer(Optimisation.result))
            .where(Optimisation.id == optimisation_id, Optimisation.user_id == user_id)
        )
    ).first()
    return None if found is None else (found[0], found[1])


def list_query(user_id: uuid.UUID) -> Select[Optimisation]:
    """The user's runs, newest first (the result, megabytes with a backtest, stays put)."""
    return (
        select(Optimisation)
        .options(defer(Optimisation.result), defer(Optimisation.request))
        .where(Optimisation.user_id == user_id)
        .order_by(Optimisation.created_at.desc(), Optimisation.id)
    )


async def active(session: AsyncSession, *, limit: int) -> Sequence[uuid.UUID]:
    """Runs queued or running, oldest first (what the workers of every replica join)."""
    rows = await session.scalars(
        select(Optimisation.id)
        .where(Optimisation.status.in_(ACTIVE))
        .order_by(Optimisation.created_at, Optimisation.id)
        .limit(limit)
    )
    return rows.all()


async def status_of(session: AsyncSession, optimisation_id: uuid.UUID) -> str | None:
    status: str | None = await session.scalar(
        select(Optimisation.status).where(Optimisation.id == optimisation_id)
    )
    return status


async def start(session: AsyncSession, optimisation_id: uuid.UUID) -> Optimisation | None:
    """Mark a queued run running (a running one stays so); None once it is over."""
    return await session.scalar(
        update(Optimisation)
        .where(Optimisation.id == optimisation_id, Optimisation.status.in_(ACTIVE))
        .values(
            status="running",
            started_at=func.coalesce(Optimisation.started_at, func.now()),
        )
        .returning(Optimisation)
        .execution_options(synchronize_session=False)
    )


async def set_progress(
    session: AsyncSession,
    optimisation_id: uuid.UUID,
    *,
    trials_done: int,
    progress: float,
    fold: int | None,
    best_value: float | None,
    best_params: dict[str, Any] | None,
) -> None:
    """Progress of a running run; never backwards (replicas report what each has seen)."""
    values: dict[str, Any] = {
        "trials_done": func.greatest(Optimisation.trials_done, trials_done),
        "progress": func.greatest(Optimisation.progress, progress),
        "fold": fold,
    }
    if best_value is not None:
        values["best_value"] = best_value
        values["best_params"] = best_params
    await session.execute(
        update(Optimisation)
        .where(
            Optimisation.id == optimisation_id,
            Optimisation.status == "running",
            Optimisation.trials_done <= trials_done,
        )
        .values(**values)
    )


async def finish(
    session: AsyncSession,
    optimisation_id: uuid.UUID,
    *,
    status: Literal["done", "failed"],
    result: dict[str, Any] | None,
    best_value: float | None,
    best_params: dict[str, Any] | None,
    trials_done: int,
    error: str | None,
) -> uuid.UUID | None:
    """End a running run (the first finishing worker wins); its user, or None when it was
    already over."""
    values: dict[str, Any] = {
        "status": status,
        "result": result,
        "error": error,
        "finished_at": func.now(),
        "trials_done": trials_done,
        "best_value": best_value,
        "best_params": best_params,
    }
    if status == "done":
        values["progress"] = 1.0
    user_id: uuid.UUID | None = await session.scalar(
        update(Optimisation)
        .where(Optimisation.id == optimisation_id, Optimisation.status == "running")
        .values(**values)
        .returning(Optimisation.user_id)
    )
    return user_id


async def keep_cancelled_result(
    session: AsyncSession,
    optimisation_id: uuid.UUID,
    *,
    result: dict[str, Any] | None,
    best_value: float | None,
    best_params: dict[str, Any] | None,
    trials_done: int,
) -> bool:
    """The result of what a cancelled run had done (once)."""
    found = await session.scalar(
        update(Optimisation)
        .where(
            Optimisation.id == optimisation_id,
            Optimisation.status == "cancelled",
            Optimisation.result.is_(None),
        )
        .values(
            result=result,
            best_value=best_value,
            best_params=best_params,
            trials_done=trials_done,
        )
        .returning(Optimisation.id)
    )
    return found is not None


async def cancel(session: AsyncSession, optimisation_id: uuid.UUID) -> None:
    await session.execute(
        update(Optimisation)
        .where(Optimisation.id == optimisation_id, Optimisation.status.in_(ACTIVE))
        .values(status="cancelled", finished_at=func.now())
    )


async def remove(session: AsyncSession, optimisation_id: uuid.UUID) -> None:
    await session.execute(delete(Optimisation).where(Optimisation.id == optimisation_id))


async def add_trials(
    session: AsyncSession, optimisation_id: uuid.UUID, trials: Sequence[dict[str, Any]]
) -> None:
    if trials:
        await session.execute(
            insert(OptimisationTrial),
            [{"optimisation_id": optimisation_id, **trial} for trial in trials],
        )


def trials_query(
    optimisation_id: uuid.UUID, *, fold: int | None, state: str | None, order: str
) -> Select[OptimisationTrial]:
    query = select(OptimisationTrial).where(OptimisationTrial.optimisation_id == optimisation_id)
    if fold is not None:
        query = query.where(OptimisationTrial.fold == fold)
    if state is not None:
        query = query.where(OptimisationTrial.state == state)
    if order == "value":
        return query.order_by(
            OptimisationTrial.value.desc().nulls_last(),
            OptimisationTrial.fold,
            OptimisationTrial.number,
        )
    return query.order_by(OptimisationTrial.fold, OptimisationTrial.number)
