"""The backtest worker: a consumer-group member on the job stream, in every replica.

Each job is one stream entry (a ``backtest.requested`` event naming the row). A replica
reads it with XREADGROUP, marks the row running, loads the candles (the request body, or
the market service's bulk route in one streamed request), runs the engine and turns its
result into JSON on worker threads (the numba kernels release the GIL, so the event loop
keeps serving requests while a million candles are simulated), stores the result and
acks. While it works it re-claims its own entry every few seconds (a heartbeat), so only
entries of a replica that died go idle; those are taken over with XAUTOCLAIM after
``backtest_claim_idle_ms`` and run again from the start (a job is a pure function of its
stored request, so running it twice gives the same result).

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
from analysis_service.backtests.service import build_strategy
from analysis_service.candle_input import job_candles
from analysis_service.market import MarketClient
from analysis_service.settings import AnalysisSettings
from shared.backtest import BacktestInputError
from shared.candles import Candles
from shared.errors import AppError
from shared.events import Event

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
        if not fields:  # trimmed away while pending
            await self.redis.xack(self.stream, self.group, entry_id)
            return
        try:
            event = Event.from_fields(fields)
            backtest_id = uuid.UUID(str(event.data["backtest_id"]))
        except (KeyError, ValueError) as exc:
            log.error("backtest_job_malformed", entry_id=entry_id, error=repr(exc))
            await self.redis.xack(self.stream, self.group, entry_id)
            return
        heartbeat = asyncio.create_task(self._heartbeat(entry_id))
        try:
            await self.execute(backtest_id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self.redis.xack(self.stream, self.group, entry_id)

    async def _heartbeat(self, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.backtest_heartbeat_s)
            with contextlib.suppress(Exception):  # a missed beat only risks a re-run
                await self.redis.xclaim(
                    self.stream, self.group, self.consumer, 0, [entry_id], justid=True
                )

    async def execute(self, backtest_id: uuid.UUID) -> None:
        """Run one job to ``done`` or ``failed`` (database errors propagate: retried)."""
        async with self.sessionmaker() as session:
            row = await repository.claim(session, backtest_id)
            await session.commit()
        if row is None:
            return  # unknown, or already finished by another replica
        log.info("backtest_started", backtest_id=str(backtest_id), strategy=row.strategy)
        loop = asyncio.get_running_loop()
        progress_writes: list[concurrent.futures.Future[None]] = []

        def report(fraction: float) -> None:  # called from the engine's thread
            progress_writes.append(
                asyncio.run_coroutine_threadsafe(self._progress(backtest_id, fraction), loop)
            )

        timings: dict[str, float] = {}
        clock = time.perf_counter()
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
            else:
                candles = await self._candles(backtest_id, request)
            timings["load_s"] = time.perf_counter() - clock
            result = await asyncio.to_thread(
                run_request,
                strategy,
                candles,
                request,
                lambda f: report(LOAD_SHARE + (1 - LOAD_SHARE) * f * 0.99),
            )
            timings["run_s"] = time.perf_counter() - clock - timings["load_s"]
            # Thousands of trades to dicts: CPU work, kept off the event loop too.
            body: dict[str, Any] | None = await asyncio.to_thread(
                result.to_json, max_points=self.settings.backtest_max_points
            )
            timings["json_s"] = time.perf_counter() - clock - timings["load_s"] - timings["run_s"]
            error = None
        except (AppError, BacktestInputError, ValueError) as exc:
            body, error = None, _message(exc)
        except Exception as exc:
            log.exception("backtest_crashed", backtest_id=str(backtest_id))
            body, error = None, f"the backtest failed unexpectedly ({type(exc).__name__})"
        for write in progress_writes:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(write)
        async with self.sessionmaker() as session:
            await repository.finish(session, backtest_id, result=body, error=error)
            await session.commit()
        log.info(
            "backtest_finished",
            backtest_id=str(backtest_id),
            error=error,
            total_s=round(time.perf_counter() - clock, 3),
            **{key: round(value, 3) for key, value in timings.items()},
        )

    async def _candles(self, backtest_id: uuid.UUID, request: dict[str, Any]) -> Candles:
        candles = await job_candles(
            request, self.market, max_candles=self.settings.backtest_max_candles
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
