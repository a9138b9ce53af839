"""Runs the bots of one engine replica (a lifespan component).

- The ``trading`` consumer group reads ``events:market.data.updated``; each closed candle
  is recorded as the latest of its market (``trading:candles:latest``), fills resting
  paper limit orders it traded through, and is fanned out on the pub/sub channel
  ``channel:trading:candles`` so every replica wakes the bots it owns.
- A sync loop reconciles with PostgreSQL every few seconds: it takes leases on running
  bots nobody owns (start, restart, a dead replica's bots), drops stopped ones, renews
  its leases and replays the latest candle to any bot that has not seen it (a candle
  that arrived while the engine was down is not lost; the bot row's ``last_candle_at``
  and deterministic client order ids mean it is never applied twice).
- A bot whose exchange fails keeps its state and is retried at the next sync; an
  unexpected error marks it ``error`` and publishes ``bot.failed``, never crashing the
  engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI
from prometheus_client import Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.cancellation import cancel_and_wait
from shared.db import unit_of_work
from shared.errors import DependencyUnavailable
from shared.events import BOT_FAILED, MARKET_DATA_UPDATED, Event, EventConsumer, stage, stream_for
from shared.strategies import SignalAction, TradingSignal, TradingStrategy, create_strategy
from trading_engine.adapter import Adapter, CandleOutcome, signal_record
from trading_engine.bots import repository
from trading_engine.bots.candles import CandleBook, CandleKey, timeframe_ms
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.service import SUBSCRIPTIONS_KEY
from trading_engine.ledger.service import SOURCE, request_notification
from trading_engine.models import Bot, Strategy
from trading_engine.orders.service import OrderService
from trading_engine.portfolio.mirror import refresh_mirror
from trading_engine.settings import TradingSettings

log = structlog.get_logger("trading.runner")

CANDLE_CHANNEL = "channel:trading:candles"
LATEST_CANDLES_KEY = "trading:candles:latest"
CONSUMER_GROUP = "trading"
# Failures of a dependency, not of the bot: retried, never counted against it.
TEMPORARY = (
    DependencyUnavailable,
    TimeoutError,
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
)
MAX_REPLAY = 10

BOTS_OWNED = Gauge("trading_bots_owned", "Running bots this replica owns")
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)
CANDLE_TO_ORDER = Histogram(
    "trading_candle_to_order_seconds",
    "From a closed candle reaching this replica to a bot's committed order",
    buckets=_LATENCY_BUCKETS,
)
SIGNAL_TO_ORDER = Histogram(
    "trading_signal_to_order_seconds",
    "From a bot's signal being computed to its committed order",
    buckets=_LATENCY_BUCKETS,
)


@dataclass
class BotHandle:
    adapter: Adapter
    key: CandleKey
    warmup: int
    last_ts: int | None = None
    flat: bool | None = None  # known to hold no position (None: not known yet)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    settings: str = ""  # fingerprint of strategy, parameters, risk and size (from SQL)


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
        self.candles = CandleBook(orders.market, keep=settings.bot_history_limit)
        self.handles: dict[uuid.UUID, BotHandle] = {}
        self.latencies: list[float] = []  # candle received -> order committed, seconds
        self._slots = asyncio.Semaphore(settings.bot_concurrency)
        self._holds: dict[uuid.UUID, tuple[datetime, dict[str, Any]]] = {}
        self._hold_flusher: asyncio.Task[None] | None = None
        self._mirrors: set[uuid.UUID] = set()
        self._mirror_flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        consumer = EventConsumer(
            self.redis,
            self.sessionmaker,
            group=CONSUMER_GROUP,
            handlers={stream_for(MARKET_DATA_UPDATED): self.on_market_data},
            claim_idle_ms=self.settings.event_claim_idle_ms,
        )
        loops = [
            asyncio.create_task(consumer.run(), name="trading-consumer"),
            asyncio.create_task(self._listen(), name="trading-candles"),
            asyncio.create_task(self._sync_forever(), name="trading-sync"),
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            await cancel_and_wait(loops + list(self._tasks))
            for bot_id in list(self.handles):
                with contextlib.suppress(Exception):
                    await self.leases.release(bot_id)
            self.handles.clear()

    # --- the event side -----------------------------------------------------------------

    async def on_market_data(self, event: Event, session: AsyncSession) -> None:
        """One closed candle (contract 2): remember it, fill limit orders, wake bots."""
        data = event.data
        key = CandleKey(str(data["exchange"]), str(data["symbol"]), str(data["timeframe"]))
        candle = [float(v) for v in data["candle"][:6]]
        message = json.dumps({"key": key.member, "candle": candle})
        previous = await self.redis.hget(LATEST_CANDLES_KEY, key.member)
        if previous is None or json.loads(previous)["candle"][0] <= candle[0]:
            await self.redis.hset(LATEST_CANDLES_KEY, key.member, message)
        # Bots first: resting limit orders need the market service, which may be down
        # (the entry is then retried, waking the bots again harmlessly).
        await self.redis.publish(CANDLE_CHANNEL, message)
        await self.orders.fill_resting(
            key.exchange, key.symbol, candle, timeframe_ms(key.timeframe) / 60_000
        )

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CANDLE_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        body = json.loads(message["data"])
                        self.wake(CandleKey.parse(body["key"]), body["candle"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("candle_listener_error", error=repr(exc))
                await asyncio.sleep(1.0)

    def wake(self, key: CandleKey, candle: list[float]) -> int:
        """Schedule the candle for every owned bot on its market; returns how many."""
        woken = 0
        woken_at = asyncio.get_running_loop().time()
        for bot_id, handle in list(self.handles.items()):
            if handle.key == key and (handle.last_ts is None or candle[0] > handle.last_ts):
                self._spawn(self.process(bot_id, candle, woken_at=woken_at))
                woken += 1
        return woken

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one bot, one candle ------------------------------------------------------------

    async def process(
        self, bot_id: uuid.UUID, candle: list[float], *, woken_at: float | None = None
    ) -> CandleOutcome | None:
        """Compute the bot's signal on the closed candle and act on it.

        Latency is measured from ``woken_at`` (the candle reaching this replica) to the
        order's commit, so queueing behind other bots counts.
        """
        handle = self.handles.get(bot_id)
        if handle is None:
            return None
        woken_at = woken_at if woken_at is not None else asyncio.get_running_loop().time()
        async with handle.lock:
            if handle.last_ts is not None and candle[0] <= handle.last_ts:
                return None
            adapter = handle.adapter
            try:
                rows = await self.candles.window(handle.key, candle, handle.warmup + 1)
                # Candles missed while no replica ran the bot are replayed in order (a
                # few at most: older signals are stale), so a signal is never lost. A bot
                # that never saw a candle starts at the current one.
                last = len(rows) - 1
                pending = (
                    [last]
                    if handle.last_ts is None
                    else [i for i, row in enumerate(rows) if row[0] > handle.last_ts][-MAX_REPLAY:]
                ) or [last]
                outcome = CandleOutcome(processed=False)
                for index in pending:
                    signal = self.candles.signal(handle.key, rows, index, adapter.strategy)
                    signal_at = asyncio.get_running_loop().time()
                    if signal.action is SignalAction.HOLD and (
                        handle.flat or (handle.flat is False and not adapter.has_exit_rules)
                    ):
                        # Holding with nothing to trade or protect (flat, or a position
                        # without stop/take-profit/trailing rules): no transaction; the
                        # bot row's status is written in batches.
                        self._hold(bot_id, rows[index], signal)
                        outcome = CandleOutcome(processed=True, flat=True)
                    else:
                        async with self._slots:
                            outcome = await adapter.on_candle(
                                rows[index], signal, signal_at=signal_at
                            )
                        outcome.woken_at = woken_at
                        handle.flat = outcome.flat
                    handle.last_ts = int(rows[index][0])
                    self._observe(outcome)
                    if outcome.paused:
                        break
            except TEMPORARY as exc:
                # The market, the exchange, the database or Redis is slow or down: keep
                # the bot's state and retry on the next candle or sync.
                detail = exc.detail if isinstance(exc, DependencyUnavailable) else repr(exc)
                log.warning("bot_dependency_unavailable", bot_id=str(bot_id), error=detail)
                await self._note_error(bot_id, detail, status=None)
                return None
            except Exception as exc:
                handle.failures += 1
                log.exception("bot_failed", bot_id=str(bot_id))
                if handle.failures >= 3:
                    await self._fail(adapter.user_id, bot_id, repr(exc))
                    self._drop(bot_id)
                return None
            handle.failures = 0
            if outcome.result is not None and outcome.result.order_id is not None:
                self._mirror(adapter.user_id)
            if outcome.paused:
                await self.leases.release(bot_id)
                self._drop(bot_id)
            return outcome

    def _mirror(self, user_id: uuid.UUID) -> None:
        """Refresh the user's Redis mirror soon; one refresh covers a burst of fills."""
        self._mirrors.add(user_id)
        if self._mirror_flusher is None or self._mirror_flusher.done():
            self._mirror_flusher = asyncio.create_task(self._flush_mirrors())

    async def _flush_mirrors(self) -> None:
        while self._mirrors:
            await asyncio.sleep(0.05)
            users, self._mirrors = self._mirrors, set()
            for user_id in users:
                await refresh_mirror(self.sessionmaker, self.redis, user_id)

    def _hold(self, bot_id: uuid.UUID, candle: list[float], signal: TradingSignal) -> None:
        candle_at = datetime.fromtimestamp(candle[0] / 1000, UTC)
        self._holds[bot_id] = (candle_at, signal_record(signal, None))
        if self._hold_flusher is None or self._hold_flusher.done():
            self._hold_flusher = asyncio.create_task(self._flush_holds())

    async def _flush_holds(self) -> None:
        # Holds that arrive while a batch is being written go in the next one.
        while self._holds:
            await asyncio.sleep(0.05)  # coalesce a burst of bots on the same candle
            holds, self._holds = self._holds, {}
            try:
                async with unit_of_work(self.sessionmaker) as session:
                    await repository.mark_candles(session, holds)
            except Exception as exc:  # status only: the next candle writes it again
                log.warning("hold_flush_failed", count=len(holds), error=repr(exc))

    def _observe(self, outcome: CandleOutcome) -> None:
        if outcome.ordered_at is not None and outcome.signal_at is not None:
            latency = outcome.ordered_at - outcome.signal_at
            SIGNAL_TO_ORDER.observe(latency)
            if outcome.woken_at is not None:
                CANDLE_TO_ORDER.observe(outcome.ordered_at - outcome.woken_at)
            self.latencies.append(latency)

    async def _note_error(self, bot_id: uuid.UUID, error: str, *, status: str | None) -> None:
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_error(session, bot_id, error, status)

    async def _fail(self, user_id: uuid.UUID, bot_id: uuid.UUID, error: str) -> None:
        """Mark the bot ``error`` and tell the user (``bot.failed`` + a notification)."""
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_error(session, bot_id, error, "error")
                data = {"user_id": str(user_id), "bot_id": str(bot_id), "error": error}
                event = Event(type=BOT_FAILED, data=data, source=SOURCE)
                stage(session, event)
                request_notification(
                    session,
                    user_id=user_id,
                    kind=BOT_FAILED,
                    title="A bot stopped on an error",
                    body=error[:500],
                    data=data,
                    source_event_id=event.id,
                )
        await self.leases.release(bot_id)

    # --- ownership ----------------------------------------------------------------------

    async def _sync_forever(self) -> None:
        last_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sync()
                if loop.time() - last_reconcile > self.settings.live_reconcile_interval_s:
                    last_reconcile = loop.time()
                    await self.orders.reconcile_live()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bot_sync_failed", error=repr(exc))
            await asyncio.sleep(self.settings.bot_sync_interval_s)

    async def sync(self) -> None:
        """Reconcile owned bots with the database and the leases; replay missed candles."""
        lost = await self.leases.renew(self.handles)
        for bot_id in lost:
            log.warning("bot_lease_lost", bot_id=str(bot_id))
            self._drop(bot_id)
        async with self.sessionmaker() as session:
            wanted = await repository.running_fingerprints(session)
        for bot_id in [b for b in self.handles if b not in wanted]:
            await self.leases.release(bot_id)
            self._drop(bot_id)
        # Full rows only for bots this replica just took over and bots edited while
        # running; the rest is settled by the fingerprints alone.
        taken = await self.leases.acquire_many(b for b in wanted if b not in self.handles)
        edited = [
            bot_id
            for bot_id, handle in self.handles.items()
            if handle.settings != wanted[bot_id]
        ]
        async with self.sessionmaker() as session:
            loaded = await repository.running_with_strategy(session, [*taken, *edited])
        for bot, strategy, fingerprint in loaded:
            taken.discard(bot.id)
            self._adopt(bot, strategy, fingerprint, previous=self.handles.get(bot.id))
        for bot_id in taken:  # stopped between the two reads
            await self.leases.release(bot_id)
        self._spawn(
            self.orders.users.warm({handle.adapter.user_id for handle in self.handles.values()})
        )
        members = {handle.key.member for handle in self.handles.values()}
        if members:
            await self.redis.sadd(SUBSCRIPTIONS_KEY, *members)
            latest = await self.redis.hmget(LATEST_CANDLES_KEY, sorted(members))
            for raw in latest:
                if raw is not None:
                    body = json.loads(raw)
                    self.wake(CandleKey.parse(body["key"]), body["candle"])
        BOTS_OWNED.set(len(self.handles))

    def _adopt(
        self,
        bot: Bot,
        strategy_row: Strategy,
        fingerprint: str,
        *,
        previous: BotHandle | None = None,
    ) -> None:
        try:
            strategy: TradingStrategy = create_strategy(
                strategy_row.strategy, strategy_row.parameters
            )
        except Exception as exc:
            log.warning("bot_strategy_invalid", bot_id=str(bot.id), error=repr(exc))
            self._spawn(self._fail(bot.user_id, bot.id, f"invalid strategy: {exc}"))
            return
        handle = BotHandle(
            adapter=Adapter(bot, strategy, self.orders),
            key=CandleKey(bot.exchange, bot.symbol, bot.timeframe),
            warmup=max(1, strategy.warmup),
            last_ts=None
            if bot.last_candle_at is None
            else int(bot.last_candle_at.timestamp() * 1000),
            settings=fingerprint,
        )
        if previous is not None:  # same ownership, same place in the candle stream
            handle.lock, handle.last_ts, handle.flat = previous.lock, previous.last_ts, None
        self.handles[bot.id] = handle
        log.info("bot_adopted", bot_id=str(bot.id), replica=self.replica_id)

    def _drop(self, bot_id: uuid.UUID) -> None:
        self.handles.pop(bot_id, None)


@asynccontextmanager
async def bot_runner(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan component: the bot runner of this replica."""
    settings: TradingSettings = app.state.settings
    if not settings.run_bots:
        yield
        return
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
