"""The optimisation workers of one analysis replica (docs/trading.md, optimisation).

Every replica polls PostgreSQL for runs queued or running and joins them with up to
``optimisation_workers`` child processes (a trial holds the GIL: the event loop must not
wait for it), spreading them over the active runs, oldest first. Joining a run: mark it
running, load its candles once (the request's rows, or the market service's bulk route),
hand them with the request to a child process that runs
:func:`~analysis_service.optimisations.runner.run_worker`, and while it works write the
progress read from the shared journal to the row every ``optimisation_progress_s`` and
pass a cancellation seen in the row on to the workers. When the child reports the run
over, its summary is stored: the row's result and the trial table, in the transaction
that ends the run (the first replica to get there; the others' identical summaries are
dropped), with a ``notification.requested`` for the owner. The run's Redis keys then
expire.

A child process that dies (killed, out of memory) costs the trial it was running, which
another worker fails after the grace period and replaces; this replica joins the run
again on its next poll. On shutdown the children are stopped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.candle_input import job_candles
from analysis_service.market import MarketClient
from analysis_service.models import Optimisation
from analysis_service.optimisations import repository
from analysis_service.optimisations.folds import shortage
from analysis_service.optimisations.plan import Plan, plan_of
from analysis_service.optimisations.process import WorkerDied, WorkerFailed, WorkerProcess
from analysis_service.optimisations.progress import ProgressReader
from analysis_service.optimisations.runner import StudyJob, WorkerConfig, WorkerOutcome
from analysis_service.optimisations.schemas import Progress, StudySettings
from analysis_service.optimisations.space import SpaceError
from analysis_service.optimisations.storage import StudyKeys
from analysis_service.optimisations.summary import Summary
from analysis_service.settings import AnalysisSettings
from shared.db import unit_of_work
from shared.errors import AppError
from shared.events import is_outage, request_notification

log = structlog.get_logger("optimisations")

FINISHED_KIND = "optimisation.finished"


def study_settings(request: dict[str, Any]) -> dict[str, Any]:
    """The study settings of a stored request (everything but where the candles are)."""
    return {key: request[key] for key in StudySettings.model_fields if key in request}


class OptimisationWorkers:
    """The lifespan component's loop: poll, join, report, finish."""

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        market: MarketClient,
        settings: AnalysisSettings,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.market = market
        self.settings = settings
        self.slots = settings.optimisation_workers
        self._joined: dict[uuid.UUID, set[asyncio.Task[None]]] = {}
        self._sync_redis: SyncRedis | None = None

    # --- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("optimisation_poll_failed", error=repr(exc))
            await asyncio.sleep(self.settings.optimisation_poll_s)

    async def poll_once(self) -> None:
        """Join active runs with the free slots, the runs with fewest of ours first."""
        busy = sum(len(tasks) for tasks in self._joined.values())
        if busy >= self.slots:
            return
        async with self.sessionmaker() as session:
            ids = list(await repository.active(session, limit=50))
        while busy < self.slots and ids:
            chosen = min(ids, key=lambda i: (len(self._joined.get(i, ())), ids.index(i)))
            self._start(chosen)
            busy += 1

    def _start(self, chosen: uuid.UUID) -> None:
        task = asyncio.create_task(self._join(chosen), name=f"optimisation-{chosen}")
        self._joined.setdefault(chosen, set()).add(task)

        def left(done: asyncio.Task[None]) -> None:
            tasks = self._joined.get(chosen)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._joined[chosen]

        task.add_done_callback(left)

    async def close(self) -> None:
        tasks = [task for tasks in self._joined.values() for task in tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self._sync_redis is not None:
            self._sync_redis.close()

    def _redis_sync(self) -> SyncRedis:
        if self._sync_redis is None:
            self._sync_redis = SyncRedis.from_url(self.settings.redis_url)
        return self._sync_redis

    # --- one run ------------------------------------------------------------------------
    async def _join(self, optimisation_id: uuid.UUID) -> None:
        try:
            await self._work(optimisation_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            cause = exc.error if isinstance(exc, WorkerFailed) else exc
            if is_outage(cause) or isinstance(cause, RedisError | WorkerDied):
                # Not the run's fault: join it again on a later poll.
                log.warning(
                    "optimisation_worker_interrupted", id=str(optimisation_id), error=repr(exc)
                )
                await asyncio.sleep(self.settings.optimisation_poll_s)
                return
            log.error("optimisation_crashed", id=str(optimisation_id), error=repr(cause))
            await self._fail(
                optimisation_id, f"the optimisation failed unexpectedly ({type(cause).__name__})"
            )

    async def _work(self, optimisation_id: uuid.UUID) -> None:
        async with self.sessionmaker() as session:
            row = await repository.start(session, optimisation_id)
            await session.commit()
        if row is None:
            return  # over (done, failed, cancelled) by now
        settings = study_settings(row.request)
        try:
            plan = await asyncio.to_thread(plan_of, StudySettings.model_validate(settings))
            candles = await job_candles(
                row.request, self.market, max_candles=self.settings.backtest_max_candles
            )
        except SpaceError as exc:
            await self._fail(optimisation_id, exc.message)
            return
        except AppError as exc:
            await self._fail(optimisation_id, exc.detail)
            return
        short = shortage(len(candles), plan.folds, plan.space.warmup, anchored=plan.anchored)
        if short:
            await self._fail(optimisation_id, f"the loaded candles do not suffice: {short}")
            return
        job = StudyJob(
            key=str(optimisation_id),
            settings=settings,
            candles=candles,
            config=WorkerConfig(
                redis_url=self.settings.redis_url,
                heartbeat_s=self.settings.optimisation_heartbeat_s,
                grace_s=self.settings.optimisation_grace_s,
                max_points=self.settings.backtest_max_points,
            ),
        )
        log.info("optimisation_joined", id=str(optimisation_id), candles=len(candles))
        worker = await asyncio.to_thread(WorkerProcess, job)
        reader = ProgressReader(self._redis_sync(), str(optimisation_id), plan)
        try:
            while True:
                await asyncio.sleep(self.settings.optimisation_progress_s)
                outcome = worker.outcome()
                await self._report(optimisation_id, reader)
                if outcome is not None:
                    break
        finally:
            # Cancelled (shutdown): its running trial is failed by the heartbeat and run
            # again by another worker.
            await asyncio.to_thread(worker.stop)
        await self._finish(optimisation_id, plan, row, outcome)

    async def _report(self, optimisation_id: uuid.UUID, reader: ProgressReader) -> None:
        """The journal's progress into the row; a cancelled row's flag into Redis."""
        try:
            progress: Progress = await asyncio.to_thread(reader.read)
        except RedisError as exc:
            log.warning("optimisation_progress_unread", id=str(optimisation_id), error=repr(exc))
            return
        async with unit_of_work(self.sessionmaker) as session:
            await repository.set_progress(
                session,
                optimisation_id,
                trials_done=progress.trials_done,
                progress=progress.fraction,
                fold=progress.fold,
                best_value=progress.best_value,
                best_params=progress.best_params,
            )
            status = await repository.status_of(session, optimisation_id)
        if status in (None, "cancelled"):
            flag = StudyKeys(str(optimisation_id)).cancel
            await self.redis.set(flag, 1, ex=self.settings.optimisation_journal_ttl_s)

    async def _finish(
        self, optimisation_id: uuid.UUID, plan: Plan, row: Optimisation, outcome: WorkerOutcome
    ) -> None:
        summary = outcome.summary
        if summary is None:
            return
        done = sum(1 for trial in summary.trials if trial["state"] != "lost")
        async with unit_of_work(self.sessionmaker) as session:
            if outcome.cancelled:
                await repository.keep_cancelled_result(
                    session,
                    optimisation_id,
                    result=summary.result,
                    best_value=summary.best_value,
                    best_params=summary.best_params,
                    trials_done=done,
                )
            else:
                user_id = await repository.finish(
                    session,
                    optimisation_id,
                    status="failed" if summary.error else "done",
                    result=summary.result,
                    best_value=summary.best_value,
                    best_params=summary.best_params,
                    trials_done=done,
                    error=summary.error,
                )
                if user_id is None:
                    return  # another replica stored it first
                await repository.add_trials(session, optimisation_id, summary.trials)
                _notify(session, user_id, row, summary, done)
        log.info(
            "optimisation_finished",
            id=str(optimisation_id),
            cancelled=outcome.cancelled,
            trials=done,
            error=summary.error,
        )
        await self._expire(optimisation_id, plan)

    async def _fail(self, optimisation_id: uuid.UUID, error: str) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            user_id = await repository.finish(
                session,
                optimisation_id,
                status="failed",
                result=None,
                best_value=None,
                best_params=None,
                trials_done=0,
                error=error,
            )
            if user_id is not None:
                notify_owner(
                    session,
                    user_id,
                    optimisation_id,
                    title="Optimisation failed",
                    body=error,
                    data={"status": "failed"},
                )
        log.info("optimisation_failed", id=str(optimisation_id), error=error)

    async def _expire(self, optimisation_id: uuid.UUID, plan: Plan) -> None:
        keys = StudyKeys(str(optimisation_id)).all_keys(plan.studies)
        with contextlib.suppress(RedisError):  # the keys only cost memory until then
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.expire(key, self.settings.optimisation_journal_ttl_s)
                await pipe.execute()


def notify_owner(
    session: AsyncSession,
    user_id: uuid.UUID,
    optimisation_id: uuid.UUID,
    *,
    title: str,
    body: str,
    data: dict[str, Any],
) -> None:
    """Stage the owner's notification (after the commit); one per run, however many
    replicas end it (the run's id is the source event id)."""
    request_notification(
        session,
        user_id=user_id,
        kind=FINISHED_KIND,
        title=title,
        body=body,
        data={"optimisation_id": str(optimisation_id), **data},
        source_event_id=optimisation_id,
        source="analysis",
    )


def _notify(
    session: AsyncSession, user_id: uuid.UUID, row: Optimisation, summary: Summary, trials: int
) -> None:
    where = f" on {row.symbol} {row.timeframe}" if row.symbol else ""
    if summary.error:
        title, body, status = "Optimisation failed", summary.error, "failed"
    else:
        params = ", ".join(f"{k}={v}" for k, v in (summary.best_params or {}).items())
        value = summary.best_value
        title, status = "Optimisation finished", "done"
        body = (
            f"{row.strategy}{where}: best {row.objective} "
            f"{'n/a' if value is None else f'{value:.4g}'} with {params} ({trials} trials)"
        )
    data = {"status": status, "best_params": summary.best_params, "best_value": summary.best_value}
    notify_owner(session, user_id, row.id, title=title, body=body, data=data)


@contextlib.asynccontextmanager
async def run_optimisation_workers(app: FastAPI) -> AsyncIterator[None]:
    """The lifespan component: this replica's optimisation worker loop."""
    settings: AnalysisSettings = app.state.settings
    workers = OptimisationWorkers(
        app.state.redis, app.state.sessionmaker, app.state.market, settings
    )
    app.state.optimisation_workers = workers
    task = (
        asyncio.create_task(workers.run(), name="optimisation-workers")
        if settings.optimisation_workers
        else None
    )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await workers.close()
