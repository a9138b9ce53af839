"""Runs the bots of one engine replica (a lifespan component), from its parts:

- :class:`~trading_engine.bots.intake.CandleIntake`: closed candles in (the ``trading``
  consumer group, the pub/sub fan-out to every replica);
- :class:`~trading_engine.bots.booking.CandleBooking`: a market's candle booked for its
  bots (holds recorded by :class:`~trading_engine.bots.holds.HoldRecorder`, batches of
  :func:`~trading_engine.bots.batch.apply_candles`, lone bots and replays);
- :class:`~trading_engine.bots.ownership.BotOwnership`: leases, placement over the live
  replicas (:mod:`~trading_engine.bots.replicas`, :mod:`~trading_engine.bots.placement`),
  hand-overs, adoption and the sync loop;
- :class:`~trading_engine.bots.failures.BotFailures`: a bot whose exchange fails keeps its
  state and is retried at the next candle or sync; an unexpected error marks it ``error``
  and publishes ``bot.failed``, never crashing the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.cancellation import cancel_and_wait
from shared.heap import tune_collections
from trading_engine.bots.booking import CandleBooking
from trading_engine.bots.candles import CandleBook, CandleKey
from trading_engine.bots.failures import BotFailures
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.holds import HoldRecorder
from trading_engine.bots.intake import CandleIntake
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.ownership import BotOwnership
from trading_engine.bots.portfolio import PortfolioBooking
from trading_engine.bots.replicas import ReplicaMembership
from trading_engine.bots.slots import BookingSlots
from trading_engine.orders.service import OrderService
from trading_engine.portfolio.mirror import MirrorFlusher
from trading_engine.settings import TradingSettings


class BotRunner:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        orders: OrderService,
        settings: TradingSettings,
        replica_id: str | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.orders = orders
        self.settings = settings
        self.replica_id = replica_id or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.leases = BotLeases(redis, self.replica_id, settings.bot_lease_ms)
        self.members = ReplicaMembership(redis, self.replica_id, settings.bot_lease_ms)
        self.candles = CandleBook(orders.market, keep=settings.bot_history_limit)
        self.handles: dict[uuid.UUID, BotHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        slots = BookingSlots(settings.bot_concurrency)
        failures = BotFailures(sessionmaker, self.leases)
        self.holds = HoldRecorder(sessionmaker, slots)
        self.booking = CandleBooking(
            handles=self.handles,
            candles=self.candles,
            orders=orders,
            batch_size=settings.bot_batch_size,
            replay_limit=settings.bot_replay_limit,
            slots=slots,
            holds=self.holds,
            mirrors=MirrorFlusher(sessionmaker, redis),
            failures=failures,
            leases=self.leases,
            spawn=self.spawn,
        )
        self.portfolios = PortfolioBooking(self.booking)
        self.intake = CandleIntake(
            sessionmaker=sessionmaker,
            redis=redis,
            orders=orders,
            claim_idle_ms=settings.event_claim_idle_ms,
            channel=settings.candle_channel,
            wake=self.wake,
        )
        self.ownership = BotOwnership(
            handles=self.handles,
            sessionmaker=sessionmaker,
            redis=redis,
            orders=orders,
            settings=settings,
            leases=self.leases,
            failures=failures,
            members=self.members,
            replica_id=self.replica_id,
            wake=self.wake,
            spawn=self.spawn,
        )

    async def run(self) -> None:
        loops = [
            asyncio.create_task(self.intake.consume(), name="trading-consumer"),
            asyncio.create_task(self.intake.listen(), name="trading-candles"),
            asyncio.create_task(self.ownership.sync_forever(), name="trading-sync"),
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            await cancel_and_wait(loops + list(self._tasks))
            with contextlib.suppress(Exception):
                await self.members.leave()
            for bot_id in list(self.handles):
                with contextlib.suppress(Exception):
                    await self.leases.release(bot_id)
            self.handles.clear()

    def wake(self, key: CandleKey, candle: list[float]) -> int:
        """Schedule the candle for the owned bots of its market; returns how many."""
        due = []
        for bot_id, handle in self.handles.items():
            if handle.portfolio is not None:  # its pairs' candles gathered, then booked
                if key in handle.portfolio.keys:
                    self.portfolios.wake(bot_id, handle, key, candle)
            elif handle.key == key and (handle.last_ts is None or candle[0] > handle.last_ts):
                due.append(bot_id)
        if due:
            woken_at = asyncio.get_running_loop().time()
            self.spawn(self.booking.process_market(key, candle, due, woken_at=woken_at))
        if key in self.ownership.asked.values():  # some may have been handed over since
            self.spawn(self.ownership.claim(key, candle))
        return len(due)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run ``coro`` as a task the runner cancels when it stops."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@asynccontextmanager
async def bot_runner(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan component: the bot runner of this replica."""
    settings: TradingSettings = app.state.settings
    if not settings.run_bots:
        yield
        return
    if settings.tunes_gc:
        tune_collections()
    runner = BotRunner(
        sessionmaker=app.state.sessionmaker,
        redis=app.state.redis,
        orders=app.state.order_service,
        settings=settings,
    )
    app.state.bot_runner = runner
    task = asyncio.create_task(runner.run(), name="bot-runner")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
