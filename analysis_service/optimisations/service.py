"""Optimisation runs: accepted by the API, worked on by every replica.

Creating a run checks everything that can be checked up front (the strategy, the search
space against its schema, the sampler, the candles against the walk-forward folds) so a
bad request is a 422 that says what to fix and stores nothing. A user has at most
``optimisation_max_jobs_per_user`` runs queued or running; one more is a 429. The row is
the queue: every replica's worker loop (:mod:`analysis_service.optimisations.worker`)
polls for active runs and joins them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.candle_input import check_source
from analysis_service.models import Optimisation
from analysis_service.optimisations import repository
from analysis_service.optimisations.folds import shortage
from analysis_service.optimisations.plan import Plan, plan_of
from analysis_service.optimisations.schemas import OptimisationCreate, OptimisationRead
from analysis_service.optimisations.space import SpaceError
from analysis_service.optimisations.storage import StudyKeys
from analysis_service.settings import AnalysisSettings
from shared.db import after_commit
from shared.errors import Conflict, NotFound, RateLimited
from shared.paging import PageParams, fetch_page
from shared.validation import invalid_input

SETTINGS_SHOWN = (
    "initial_capital",
    "fee",
    "slippage",
    "position_size",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "min_trades",
    "n_trials",
    "timeout_s",
    "seed",
    "walk_forward",
    "parameters",
)


def check_request(
    body: OptimisationCreate, settings: AnalysisSettings
) -> tuple[Plan, datetime | None, datetime | None]:
    """The plan and the candles' time range, or a 422 (CPU work: run off the loop)."""
    try:
        plan = plan_of(body.settings())
    except SpaceError as exc:
        raise invalid_input(exc.loc, exc.message) from None
    size = check_source(
        body,
        body_max=settings.backtest_body_max_candles,
        range_max=settings.backtest_max_candles,
    )
    short = shortage(size.count, plan.folds, plan.space.warmup, anchored=plan.anchored)
    if short:
        where = "walk_forward" if plan.folds else ("candles" if body.candles else "start")
        raise invalid_input(["body", where], short)
    return plan, size.start_at, size.end_at


class OptimisationService:
    def __init__(self, session: AsyncSession, settings: AnalysisSettings) -> None:
        self.session = session
        self.settings = settings

    async def create(self, user_id: uuid.UUID, body: OptimisationCreate) -> Optimisation:
        """Check the request and store the run (queued for the workers)."""
        plan, start_at, end_at = await asyncio.to_thread(check_request, body, self.settings)
        await self._check_job_bound(user_id)
        return await repository.add(
            self.session,
            Optimisation(
                user_id=user_id,
                status="queued",
                strategy=body.strategy,
                objective=plan.objective,
                sampler=plan.sampler,
                request=body.model_dump(mode="json"),
                space=plan.space.to_json(),
                exchange=body.exchange,
                symbol=body.symbol,
                timeframe=body.timeframe,
                start_at=start_at,
                end_at=end_at,
                trials_total=plan.trials_total,
                trials_done=0,
                progress=0.0,
            ),
        )

    async def _check_job_bound(self, user_id: uuid.UUID) -> None:
        await repository.lock_user_jobs(self.session, user_id)
        active = await repository.count_active_for_user(self.session, user_id)
        limit = self.settings.optimisation_max_jobs_per_user
        if active >= limit:
            wait = self.settings.optimisation_busy_retry_after_s
            raise RateLimited(
                f"You have {active} optimisations queued or running, the most allowed at "
                f"once is {limit}; cancel one or retry after one finishes.",
                retry_after=wait,
            )

    async def get(self, user_id: uuid.UUID, optimisation_id: uuid.UUID) -> Optimisation:
        row = await repository.get_for_user(self.session, optimisation_id, user_id)
        if row is None:
            raise NotFound("No such optimisation.")
        return row

    async def read_json(self, user_id: uuid.UUID, optimisation_id: uuid.UUID) -> bytes:
        """The body of ``GET /analysis/optimisations/{id}``, built on a worker thread (the
        best parameters' backtest is megabytes of JSON on a long history)."""
        found = await repository.get_for_user_result_text(self.session, optimisation_id, user_id)
        if found is None:
            raise NotFound("No such optimisation.")
        row, result_text = found

        def build() -> bytes:
            result = None if result_text is None else orjson.loads(result_text)
            body = optimisation_read(row, result)
            return OptimisationRead.model_validate(body).model_dump_json().encode()

        return await asyncio.to_thread(build)

    async def page(
        self, user_id: uuid.UUID, page: PageParams
    ) -> tuple[Sequence[Optimisation], int]:
        return await fetch_page(self.session, repository.list_query(user_id), page)

    async def trials(
        self,
        user_id: uuid.UUID,
        optimisation_id: uuid.UUID,
        page: PageParams,
        *,
        fold: int | None,
        state: str | None,
        order: str,
    ) -> tuple[Sequence[Any], int]:
        await self.get(user_id, optimisation_id)
        query = repository.trials_query(optimisation_id, fold=fold, state=state, order=order)
        return await fetch_page(self.session, query, page)

    async def cancel_or_delete(
        self, user_id: uuid.UUID, optimisation_id: uuid.UUID, redis: Redis
    ) -> Optimisation | None:
        """Cancel a queued or running run (kept, with what it had done); delete one that
        is over. Returns the cancelled run, None when deleted."""
        row = await repository.get_for_user(self.session, optimisation_id, user_id, lock=True)
        if row is None:
            raise NotFound("No such optimisation.")
        if row.status in repository.ACTIVE:
            await repository.cancel(self.session, optimisation_id)
            await self.session.refresh(row)
            flag = StudyKeys(str(optimisation_id)).cancel

            async def stop_workers() -> None:
                # Workers check this flag before every trial (the row on every poll, in
                # case this write is lost).
                await redis.set(flag, 1, ex=self.settings.optimisation_journal_ttl_s)

            after_commit(self.session, stop_workers)
            return row
        await repository.remove(self.session, optimisation_id)
        return None

    async def best(self, user_id: uuid.UUID, optimisation_id: uuid.UUID) -> dict[str, Any]:
        """The recommended parameters of a finished run (for a bot)."""
        row = await self.get(user_id, optimisation_id)
        best = (row.result or {}).get("best")
        if row.status != "done" or not best:
            raise Conflict(
                f"The optimisation is {row.status}"
                + ("; it has no recommended parameters" if row.status == "done" else "")
                + ": a bot can be created from a finished optimisation only."
            )
        return {
            "id": row.id,
            "strategy": row.strategy,
            "parameters": best["parameters"],
            "stops": best["stops"],
            "value": best["value"],
            "objective": row.objective,
            "symbol": row.symbol,
            "timeframe": row.timeframe,
            "exchange": row.exchange,
        }


def progress_of(row: Optimisation) -> dict[str, Any]:
    return {
        "trials_done": row.trials_done,
        "trials_total": row.trials_total,
        "fraction": row.progress,
        "fold": row.fold,
        "best_value": row.best_value,
        "best_params": row.best_params,
    }


def optimisation_summary(row: Optimisation) -> dict[str, Any]:
    """An item of ``GET /analysis/optimisations``."""
    return {
        "id": row.id,
        "status": row.status,
        "strategy": row.strategy,
        "objective": row.objective,
        "symbol": row.symbol,
        "timeframe": row.timeframe,
        "progress": progress_of(row),
        "best_params": row.best_params,
        "best_value": row.best_value,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
    }


def optimisation_read(row: Optimisation, result: dict[str, Any] | None) -> dict[str, Any]:
    """The body of ``GET /analysis/optimisations/{id}``: the summary and the rest."""
    return {
        **optimisation_summary(row),
        "error": row.error,
        "sampler": row.sampler,
        "space": row.space,
        "exchange": row.exchange,
        "start": row.start_at,
        "end": row.end_at,
        "settings": {key: row.request.get(key) for key in SETTINGS_SHOWN},
        "result": result,
        "started_at": row.started_at,
    }
