"""The backtest worker: a consumer-group member on the job stream, in every replica.

Each job is one stream entry (a ``backtest.requested`` event naming the row). A replica
reads it with XREADGROUP (a blocking read: a new job is picked up at once), marks the row
running, loads the candles (the request body, or the market service's bulk route in one
streamed request), runs the engine and turns its result into JSON on worker threads (the
numba kernels release the GIL, so the event loop keeps serving requests while a million
candles are simulated), stores the result, acks and deletes the entry (the stream holds
only jobs not finished yet). While it works it renews a heartbeat every few seconds: it
re-claims its own entry and stamps the row's ``heartbeat_at``, so only the jobs of a
replica that died go idle; those are taken over (XAUTOCLAIM, then a claim of the row that
only succeeds for a queued job or a running one without a heartbeat for
``backtest_claim_idle_ms``) and run again from the start (a job is a pure function of its
stored request, so running it twice gives the same result).

A job must not wait for an entry that is gone (trimmed from the stream, or lost with a
Redis that restarted without its data): every ``backtest_recover_interval_s`` one replica
looks for jobs queued, or running without a heartbeat, for longer than
``backtest_claim_idle_ms`` that no entry in the stream names, and queues them again.

A job never fails silently: bad data, a strategy error or an unreachable market service
ends it as ``failed`` with a message that says what went wrong. Only when the database
itself cannot be written is the entry left pending, to be retried.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from analysis_service.backtests import repository
from analysis_service.backtests.engine_run import PairCandles, is_portfolio, load_pairs, run_request
from analysis_service.backtests.service import BACKTEST_REQUESTED, build_strategy
from analysis_service.candle_input import job_candles
from analysis_service.market import MarketClient
from analysis_service.models import Backtest
from analysis_service.settings import AnalysisSettings
from shared.backtest import BacktestInputError
from shared.backtest.report import result_json
from shared.candles import Candles
from shared.errors import AppError
from shared.events import Event, publish

log = structlog.get_logger("backtests")

LOAD_SHARE = 0.3  # progress reported while loading candles, the rest while simulating


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BacktestWorker:
    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        market: MarketClient,
        settings: AnalysisSettings,
        *,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.market = market
        self.settings = settings
        self.stream = settings.backtest_stream
        self.group = settings.backtest_group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stopping = False
        self._next_recovery = time.monotonic() + settings.backtest_recover_interval_s

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        """Finish after the current read (cancellation alone can be swallowed by a client
        library in a blocking read; the flag cannot)."""
        self._stopping = True

    async def run(self) -> None:
        """Work until stopped; an outage of Redis or the database only pauses it."""
        while not self._stopping:
            try:
                await self.ensure_group()
                while not self._stopping:
                    await self.process_once()
                    if time.monotonic() >= self._next_recovery:
                        self._next_recovery = (
                            time.monotonic() + self.settings.backtest_recover_interval_s
                        )
                        await self.recover_lost_jobs()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("backtest_worker_error", error=repr(exc))
                await asyncio.sleep(1.0)

    async def process_once(self, *, block_ms: int = 1000) -> int:
        """Take over abandoned jobs, then read new ones; returns how many were run."""
        done = 0
        result = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.settings.backtest_claim_idle_ms,
            start_id="0-0",
            count=1,
        )
        for entry_id, fields in result[1] if result else []:
            await self._handle(_text(entry_id), fields)
            done += 1
        response = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=1, block=block_ms
        )
        for _stream, entries in _entries(response):
            for entry_id, fields in entries:
                await self._handle(_text(entry_id), fields)
                done += 1
        return done

    async def _handle(self, entry_id: str, fields: Mapping[Any, Any] | None) -> None:
        if not fields:  # trimmed away while pending (the job is recovered, see the module)
            await self._done_with(entry_id)
            return
        try:
            event = Event.from_fields(fields)
            backtest_id = uuid.UUID(str(event.data["backtest_id"]))
        except (KeyError, ValueError) as exc:
            log.error("backtest_job_malformed", entry_id=entry_id, error=repr(exc))
            await self._done_with(entry_id)
            return
        await self.execute(backtest_id, entry_id=entry_id)
        await self._done_with(entry_id)

    async def _done_with(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def _heartbeat(self, backtest_id: uuid.UUID, entry_id: str | None) -> None:
        while True:
            await asyncio.sleep(self.settings.backtest_heartbeat_s)
            with contextlib.suppress(Exception):  # a missed beat only risks a re-run
                if entry_id is not None:
                    await self.redis.xclaim(
                        self.stream, self.group, self.consumer, 0, [entry_id], justid=True
                    )
                async with self.sessionmaker() as session:
                    await repository.beat(session, backtest_id)
                    await session.commit()

    async def recover_lost_jobs(self) -> int:
        """Queue again the jobs no stream entry names any more (see the module); returns
        how many. Database and Redis errors propagate (the caller's loop retries)."""
        interval_ms = int(self.settings.backtest_recover_interval_s * 1000)
        lock = recover_lock(self.stream)
        if not await self.redis.set(lock, self.consumer, nx=True, px=interval_ms):
            return 0
        idle_ms = self.settings.backtest_claim_idle_ms
        async with self.sessionmaker() as session:
            stale = await repository.stale(session, idle_ms=idle_ms)
        if not stale:
            return 0
        waiting = await self._jobs_in_stream()
        lost = [row for row in stale if row.id not in waiting]
        for row in lost:
            event = Event(
                type=BACKTEST_REQUESTED,
                data={"backtest_id": str(row.id), "user_id": str(row.user_id)},
                source="analysis",
            )
            await publish(self.redis, event, stream=self.stream)
            log.warning("backtest_requeued", backtest_id=str(row.id), status=row.status)
        return len(lost)

    async def _jobs_in_stream(self, page: int = 1000) -> set[uuid.UUID]:
        """The jobs the stream's entries name (finished ones are deleted: it is short)."""
        found: set[uuid.UUID] = set()
        start = "-"
        while True:
            entries = await self.redis.xrange(self.stream, min=start, count=page) or []
            for entry_id, fields in entries:
                with contextlib.suppress(KeyError, ValueError):
                    found.add(uuid.UUID(str(Event.from_fields(fields or {}).data["backtest_id"])))
                start = f"({_text(entry_id)}"
            if len(entries) < page:
                return found

    async def execute(self, backtest_id: uuid.UUID, *, entry_id: str | None = None) -> None:
        """Run one job to ``done`` or ``failed`` (database errors propagate: retried);
        ``entry_id``: the stream entry to keep claimed meanwhile."""
        async with self.sessionmaker() as session:
            row = await repository.claim(
                session, backtest_id, idle_ms=self.settings.backtest_claim_idle_ms
            )
            await session.commit()
        if row is None:
            return  # unknown, finished, or run by another worker
        heartbeat = asyncio.create_task(self._heartbeat(backtest_id, entry_id))
        try:
            await self._run(row)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _run(self, row: Backtest) -> None:
        backtest_id = row.id
        log.info("backtest_started", backtest_id=str(backtest_id), strategy=row.strategy)
        loop = asyncio.get_running_loop()
        progress_writes: list[concurrent.futures.Future[None]] = []

        def report(fraction: float) -> None:  # called from the engine's thread
            progress_writes.append(
                asyncio.run_coroutine_threadsafe(self._progress(backtest_id, fraction), loop)
            )

        # Where a job's time goes, in its log line (docs/operations.md).
        started = row.started_at or row.created_at
        timings = {"queued_s": (started - row.created_at).total_seconds()}
        lap = time.perf_counter()

        def stage(name: str) -> None:
            nonlocal lap
            now = time.perf_counter()
            timings[name] = now - lap
            lap = now

        metrics: dict[str, Any] | None = None
        body: str | None = None
        error: str | None = None
        count: int | None = None
        try:
            request = row.request
            strategy = build_strategy(row.strategy, row.parameters)
            candles: Candles | PairCandles
            if is_portfolio(request):
                candles = await load_pairs(
                    self.market,
                    request,
                    max_candles=self.settings.backtest_max_candles,
                    progress=lambda f: self._progress(backtest_id, LOAD_SHARE * f),
                )
                count = sum(len(c) for c in candles.values())
            else:
                candles = await self._candles(backtest_id, request, timings)
                count = len(candles)
            stage("load_s")
            result = await asyncio.to_thread(
                run_request,
                strategy,
                candles,
                request,
                lambda f: report(LOAD_SHARE + (1 - LOAD_SHARE) * f * 0.99),
            )
            stage("run_s")
            # Tens of thousands of trades to JSON: CPU work, kept off the event loop too.
            encoded = await asyncio.to_thread(
                result_json, result, max_points=self.settings.backtest_max_points
            )
            body, metrics = encoded.decode(), result.metrics
            stage("json_s")
        except (AppError, BacktestInputError, ValueError) as exc:
            error = _message(exc)
        except Exception as exc:
            log.exception("backtest_crashed", backtest_id=str(backtest_id))
            error = f"the backtest failed unexpectedly ({type(exc).__name__})"
        for write in progress_writes:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(write)
        async with self.sessionmaker() as session:
            await repository.finish(session, backtest_id, result=body, metrics=metrics, error=error)
            await session.commit()
        stage("store_s")
        log.info(
            "backtest_finished",
            backtest_id=str(backtest_id),
            error=error,
            candles=count,
            **{key: round(value, 3) for key, value in timings.items()},
        )

    async def _candles(
        self, backtest_id: uuid.UUID, request: dict[str, Any], timings: dict[str, float]
    ) -> Candles:
        candles = await job_candles(
            request,
            self.market,
            max_candles=self.settings.backtest_max_candles,
            timings=timings,
        )
        if request.get("candles") is not None:
            return candles
        await self._progress(backtest_id, LOAD_SHARE)
        if len(candles) < 2:
            raise BacktestInputError(
                f"the market service has {len(candles)} {request['timeframe']} candles of "
                f"{request['symbol']} in that range; a backtest needs at least 2"
            )
        return candles

    async def _progress(self, backtest_id: uuid.UUID, fraction: float) -> None:
        async with self.sessionmaker() as session:
            await repository.set_progress(session, backtest_id, round(fraction, 4))
            await session.commit()


def recover_lock(stream: str) -> str:
    """The key held by the replica looking for lost jobs (one at a time)."""
    return f"{stream}:recover-lock"


def _message(exc: Exception) -> str:
    if isinstance(exc, AppError):
        return exc.detail
    return str(exc)


def _entries(response: Any) -> list[tuple[Any, list[tuple[Any, Any]]]]:
    """XREADGROUP's reply as ``[(stream, [(id, fields), ...])]`` (RESP2 or RESP3 shape)."""
    if not response:
        return []
    if isinstance(response, dict):
        return list(response.items())
    return [(stream, entries) for stream, entries in response]


@contextlib.asynccontextmanager
async def run_backtest_workers(app: FastAPI) -> AsyncIterator[None]:
    """The lifespan component: ``backtest_workers`` workers on the job stream."""
    settings: AnalysisSettings = app.state.settings
    workers = [
        BacktestWorker(app.state.redis, app.state.sessionmaker, app.state.market, settings)
        for _ in range(settings.backtest_workers)
    ]
    app.state.backtest_workers = workers
    tasks = [
        asyncio.create_task(w.run(), name=f"backtest-worker-{i}") for i, w in enumerate(workers)
    ]
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
