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
from shared.heap import freeze_long_lived, tune_collections
from shared.strategies import SignalAction, TradingSignal, TradingStrategy, create_strategy
from trading_engine.adapter import (
    Adapter,
    CandleOutcome,
    CandleWork,
    apply_candles,
    signal_record,
)
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
# Fine around the 100 ms objective, so its p99 reads to 10 ms.
_LATENCY_BUCKETS = (
    0.005,
    *(i / 100 for i in range(1, 11)),
    0.125,
    0.15,
    0.2,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
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
        self._booking = 0  # candle transactions in flight (the hold flush yields to them)
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
        """Schedule the candle for the owned bots of its market; returns how many."""
        due = [
            bot_id
            for bot_id, handle in self.handles.items()
            if handle.key == key and (handle.last_ts is None or candle[0] > handle.last_ts)
        ]
        if due:
            woken_at = asyncio.get_running_loop().time()
            self._spawn(self.process_market(key, candle, due, woken_at=woken_at))
        return len(due)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one market, one candle ---------------------------------------------------------

    async def process_market(
        self, key: CandleKey, candle: list[float], bot_ids: list[uuid.UUID], *, woken_at: float
    ) -> None:
        """One closed candle for the bots of one market.

        Signals are computed once per strategy configuration; a bot that holds with
        nothing to protect needs no transaction (its status is written in batches); the
        bots that trade or must check their exits are booked together, ``bot_batch_size``
        to a transaction (:func:`apply_candles`), so a burst of orders on one candle costs
        a few statements, not a transaction per bot. A bot that is busy, trades live or
        missed earlier candles (a replay) goes through :meth:`process` on its own, and so
        does every bot of a batch that failed.
        """
        alone: list[uuid.UUID] = []
        held: dict[uuid.UUID, BotHandle] = {}
        for bot_id in bot_ids:
            handle = self.handles.get(bot_id)
            if handle is None:
                continue
            if handle.lock.locked() or handle.adapter.mode != "paper":
                alone.append(bot_id)
                continue
            await handle.lock.acquire()  # free: taken without yielding
            held[bot_id] = handle
        try:
            if held:
                await self._book_market(key, candle, held, alone, woken_at)
        finally:
            for handle in held.values():
                handle.lock.release()
        for bot_id in alone:
            self._spawn(self.process(bot_id, candle, woken_at=woken_at))

    async def _book_market(
        self,
        key: CandleKey,
        candle: list[float],
        held: dict[uuid.UUID, BotHandle],
        alone: list[uuid.UUID],
        woken_at: float,
    ) -> None:
        """Signals, holds and batches of the bots whose locks :meth:`process_market` holds;
        the bots to run on their own are added to ``alone``."""
        loop = asyncio.get_running_loop()
        need = max(handle.warmup for handle in held.values()) + 1
        try:
            rows = await self.candles.window(key, candle, need)
        except TEMPORARY as exc:
            await self._note_errors(list(held), _detail(exc))
            return
        except Exception:
            alone.extend(held)  # each bot on its own, where the error counts against it
            return
        last = len(rows) - 1
        previous_ts = int(rows[last - 1][0]) if last > 0 else None
        work: list[CandleWork] = []
        for bot_id, handle in held.items():
            if handle.last_ts is not None and candle[0] <= handle.last_ts:
                continue  # seen meanwhile
            if handle.last_ts is not None and handle.last_ts != previous_ts:
                alone.append(bot_id)  # missed candles: replayed in order on its own
                continue
            adapter = handle.adapter
            try:
                signal = self.candles.signal(key, rows, last, adapter.strategy)
            except Exception:
                alone.append(bot_id)  # counted against the bot by process()
                continue
            if self._held(bot_id, handle, rows[last], signal):
                continue
            work.append(CandleWork(adapter, rows[last], signal, loop.time()))
        size = self.settings.bot_batch_size
        # More than one batch per market run side by side (up to BOT_CONCURRENCY).
        await asyncio.gather(
            *(
                self._apply_batch(work[start : start + size], held, alone, woken_at)
                for start in range(0, len(work), size)
            )
        )

    async def _apply_batch(
        self,
        chunk: list[CandleWork],
        held: dict[uuid.UUID, BotHandle],
        alone: list[uuid.UUID],
        woken_at: float,
    ) -> None:
        try:
            async with self._booking_slot():
                outcomes = await apply_candles(self.orders, chunk)
        except TEMPORARY as exc:
            await self._note_errors([item.adapter.bot_id for item in chunk], _detail(exc))
            return
        except Exception as exc:
            # One bot's error rolls its batch back: each goes again on its own, so the
            # error is counted against that bot only.
            log.warning("bot_batch_failed", count=len(chunk), error=repr(exc))
            alone.extend(item.adapter.bot_id for item in chunk)
            return
        for item, outcome in zip(chunk, outcomes, strict=True):
            bot_id = item.adapter.bot_id
            outcome.woken_at = woken_at
            await self._settle(bot_id, held[bot_id], outcome, int(item.candle[0]))

    @asynccontextmanager
    async def _booking_slot(self) -> AsyncIterator[None]:
        """One of ``bot_concurrency`` candle transactions, counted while it runs."""
        async with self._slots:
            self._booking += 1
            try:
                yield
            finally:
                self._booking -= 1

    async def _settle(
        self, bot_id: uuid.UUID, handle: BotHandle, outcome: CandleOutcome, candle_ts: int
    ) -> None:
        """Book-keeping after a bot's candle was applied."""
        handle.flat = outcome.flat
        handle.last_ts = candle_ts
        handle.failures = 0
        self._observe(outcome)
        if outcome.result is not None and outcome.result.order_id is not None:
            self._mirror(handle.adapter.user_id)
        if outcome.paused:
            await self.leases.release(bot_id)
            self._drop(bot_id)

    # --- one bot, one candle ------------------------------------------------------------

    async def process(
        self, bot_id: uuid.UUID, candle: list[float], *, woken_at: float | None = None
    ) -> None:
        """One bot on its own: compute its signal on the closed candle and act on it,
        first replaying (in order) the candles it missed while no replica ran it.

        Latency is measured from ``woken_at`` (the candle reaching this replica) to the
        order's commit, so queueing behind other bots counts.
        """
        handle = self.handles.get(bot_id)
        if handle is None:
            return
        woken_at = woken_at if woken_at is not None else asyncio.get_running_loop().time()
        async with handle.lock:
            if handle.last_ts is not None and candle[0] <= handle.last_ts:
                return
            adapter = handle.adapter
            try:
                rows = await self.candles.window(handle.key, candle, handle.warmup + 1)
                # A few missed candles at most are replayed (older signals are stale), so
                # a signal is never lost. A bot that never saw a candle starts at this one.
                last = len(rows) - 1
                pending = (
                    [last]
                    if handle.last_ts is None
                    else [i for i, row in enumerate(rows) if row[0] > handle.last_ts][-MAX_REPLAY:]
                ) or [last]
                for index in pending:
                    signal = self.candles.signal(handle.key, rows, index, adapter.strategy)
                    if self._held(bot_id, handle, rows[index], signal):
                        continue
                    signal_at = asyncio.get_running_loop().time()
                    async with self._booking_slot():
                        outcome = await adapter.on_candle(rows[index], signal, signal_at=signal_at)
                    outcome.woken_at = woken_at
                    await self._settle(bot_id, handle, outcome, int(rows[index][0]))
                    if outcome.paused:
                        return
            except TEMPORARY as exc:
                # The market, the exchange, the database or Redis is slow or down: keep
                # the bot's state and retry on the next candle or sync.
                await self._note_errors([bot_id], _detail(exc))
            except Exception as exc:
                handle.failures += 1
                log.exception("bot_failed", bot_id=str(bot_id))
                if handle.failures >= 3:
                    await self._fail(adapter.user_id, bot_id, repr(exc))
                    self._drop(bot_id)

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

    def _held(
        self, bot_id: uuid.UUID, handle: BotHandle, candle: list[float], signal: TradingSignal
    ) -> bool:
        """A HOLD with nothing to trade or protect (flat, or a position without stop /
        take-profit / trailing rules) needs no transaction: the candle is marked seen and
        the bot row's status is written in batches. False if the candle must be booked."""
        if signal.action is not SignalAction.HOLD or not (
            handle.flat or (handle.flat is False and not handle.adapter.has_exit_rules)
        ):
            return False
        self._hold(bot_id, candle, signal)
        handle.last_ts = int(candle[0])
        handle.failures = 0
        return True

    def _hold(self, bot_id: uuid.UUID, candle: list[float], signal: TradingSignal) -> None:
        candle_at = datetime.fromtimestamp(candle[0] / 1000, UTC)
        self._holds[bot_id] = (candle_at, signal_record(signal, None))
        if self._hold_flusher is None or self._hold_flusher.done():
            self._hold_flusher = asyncio.create_task(self._flush_holds())

    async def _flush_holds(self) -> None:
        # Holds that arrive while a batch is being written go in the next one.
        while self._holds:
            await asyncio.sleep(0.05)  # coalesce a burst of bots on the same candle
            # Orders first: these status-only writes wait (a second at most) while bots'
            # candles are being booked, instead of competing with them.
            for _ in range(100):
                if not self._booking:
                    break
                await asyncio.sleep(0.01)
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

    async def _note_errors(self, bot_ids: list[uuid.UUID], detail: str) -> None:
        """A dependency failed: the bots keep running, with the error shown."""
        log.warning("bot_dependency_unavailable", bots=len(bot_ids), error=detail)
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_errors(session, bot_ids, detail)

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
            bot_id for bot_id, handle in self.handles.items() if handle.settings != wanted[bot_id]
        ]
        async with self.sessionmaker() as session:
            loaded = await repository.running_with_strategy(session, [*taken, *edited])
        for bot, strategy, fingerprint in loaded:
            taken.discard(bot.id)
            self._adopt(bot, strategy, fingerprint, previous=self.handles.get(bot.id))
        if loaded and self.settings.tunes_gc:
            freeze_long_lived()  # the adopted bots live as long as the process
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


def _detail(exc: BaseException) -> str:
    return exc.detail if isinstance(exc, DependencyUnavailable) else repr(exc)


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
