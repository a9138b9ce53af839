"""Which running bots this replica runs: a sync loop reconciles with PostgreSQL every
``BOT_SYNC_INTERVAL_S``. Each sync heartbeats the replica's membership
(:mod:`~trading_engine.bots.replicas`), places every running bot on a live replica
(:mod:`~trading_engine.bots.placement`), then

- takes the leases of unowned bots placed here (and of unowned bots placed elsewhere that
  nobody took since the previous sync: a safety net, the bot moves on by hand-over);
- asks for bots placed here that another replica owns, and adopts the ones handed over;
- hands over its own bots placed on another replica that asked for them, each between
  two of its candles (its lock free), the lease passed from owner to asker in one step;
- drops stopped bots, renews its leases, rebuilds the adapter of a bot edited while it
  runs, and replays the latest candle to any bot that has not seen it (the bot row's
  ``last_candle_at`` and deterministic client order ids mean a candle is never applied
  twice, whichever replica applies it).

Live orders left open are reconciled from the same loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.cancellation import raise_if_cancelling
from shared.db import unit_of_work
from shared.heap import freeze_long_lived
from shared.resample import check_higher
from shared.strategies import TradingStrategy, create_strategy
from trading_engine.bots import repository
from trading_engine.bots.adapter import Adapter
from trading_engine.bots.candles import CandleKey, timeframe_ms
from trading_engine.bots.failures import BotFailures
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.metrics import BOTS_OWNED
from trading_engine.bots.placement import Placement
from trading_engine.bots.portfolio import portfolio_handle, portfolio_markets
from trading_engine.bots.replicas import MEMBER_PREFIX, ReplicaMembership
from trading_engine.bots.service import LATEST_CANDLES_KEY, SUBSCRIPTIONS_KEY
from trading_engine.models import Bot, Strategy
from trading_engine.orders.service import OrderService
from trading_engine.risk.pauses import resume_due
from trading_engine.settings import TradingSettings

log = structlog.get_logger("trading.runner")


class BotOwnership:
    def __init__(
        self,
        *,
        handles: dict[uuid.UUID, BotHandle],
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        orders: OrderService,
        settings: TradingSettings,
        leases: BotLeases,
        failures: BotFailures,
        members: ReplicaMembership,
        replica_id: str,
        wake: Callable[[CandleKey, list[float]], object],
        spawn: Callable[[Coroutine[Any, Any, object]], None],
    ) -> None:
        self.handles = handles
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.orders = orders
        self.settings = settings
        self.leases = leases
        self.failures = failures
        self.members = members
        self.replica_id = replica_id
        self.placement = Placement()
        # Bots asked for (with their markets: a candle of one claims them at once), and
        # the unowned bots of the previous sync.
        self.asked: dict[uuid.UUID, CandleKey] = {}
        self._free_before: set[uuid.UUID] = set()
        self.wake = wake
        self.spawn = spawn

    async def sync_forever(self) -> None:
        last_reconcile = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.sync()
                if loop.time() - last_reconcile > self.settings.live_reconcile_interval_s:
                    last_reconcile = loop.time()
                    await self.orders.live_orders.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()  # a stopped runner's sync must not go on as a ghost
                log.warning("bot_sync_failed", error=repr(exc))
            await asyncio.sleep(self.settings.bot_sync_interval_s)

    async def sync(self) -> None:
        """Reconcile owned bots with the database, the leases and the placement; replay
        missed candles."""
        live = await self.members.heartbeat()
        lost = await self.leases.renew(self.handles)
        for bot_id in lost:
            log.warning("bot_lease_lost", bot_id=str(bot_id))
            self.drop(bot_id)
        async with unit_of_work(self.sessionmaker) as session:
            await resume_due(session)  # daily-loss pauses whose UTC day has passed
        async with self.sessionmaker() as session:
            wanted = await repository.running_bots(session)
        for bot_id in [b for b in self.handles if b not in wanted]:
            await self.leases.release(bot_id)
            self.drop(bot_id)
        placed = self.placement.of(wanted, live)
        await self.hand_out(placed)
        taken = await self.take_in(wanted, placed)
        # Full rows only for bots this replica just took over and bots edited while
        # running; the rest is settled by the fingerprints alone.
        edited = [
            bot_id
            for bot_id, handle in self.handles.items()
            if handle.settings != wanted[bot_id].fingerprint
        ]
        await self.load_and_adopt(taken, edited)
        self.spawn(
            self.orders.users.warm({handle.adapter.user_id for handle in self.handles.values()})
        )
        members = {handle.key.member for handle in self.handles.values()}
        members |= portfolio_markets(self.handles)
        if members:
            # The higher timeframes the strategies read are watched too: the market
            # service stores each such candle as it closes (docs/events.md).
            watched = members | {
                member for handle in self.handles.values() for member in handle.higher_members()
            }
            await self.redis.sadd(SUBSCRIPTIONS_KEY, *watched)
            latest = await self.redis.hmget(LATEST_CANDLES_KEY, sorted(members))
            for raw in latest:
                if raw is not None:
                    body = json.loads(raw)
                    self.wake(CandleKey.parse(body["key"]), body["candle"])
        BOTS_OWNED.set(len(self.handles))

    async def take_in(
        self, wanted: dict[uuid.UUID, repository.RunningBot], placed: dict[uuid.UUID, str]
    ) -> set[uuid.UUID]:
        """Leases this replica now holds of bots it does not run yet: unowned ones it
        took, and ones another replica handed over. Asks for the bots placed here that
        another replica holds."""
        others = [bot_id for bot_id in wanted if bot_id not in self.handles]
        owners = await self.leases.owners(others)
        free = {bot_id for bot_id, owner in owners.items() if owner is None}
        mine = [
            bot_id
            for bot_id in free
            if placed.get(bot_id) == self.replica_id or bot_id in self._free_before
        ]
        self._free_before = free
        asked = {
            bot_id: CandleKey.parse(wanted[bot_id].market)
            for bot_id, owner in owners.items()
            if owner not in (None, self.replica_id) and placed.get(bot_id) == self.replica_id
        }
        await self.leases.ask(asked)
        self.asked = asked
        handed = {bot_id for bot_id, owner in owners.items() if owner == self.replica_id}
        return await self.leases.acquire_many(mine) | handed

    async def load_and_adopt(
        self, taken: set[uuid.UUID], edited: list[uuid.UUID] | None = None
    ) -> list[uuid.UUID]:
        """Load the rows of bots whose leases this replica holds (``taken``) or whose
        settings changed (``edited``) and run them; returns the bots adopted."""
        taken = set(taken)
        async with self.sessionmaker() as session:
            loaded = await repository.running_with_strategy(session, [*taken, *(edited or [])])
        adopted: list[uuid.UUID] = []
        for bot, strategy, fingerprint in loaded:
            taken.discard(bot.id)
            self.asked.pop(bot.id, None)
            if self.adopt(bot, strategy, fingerprint, previous=self.handles.get(bot.id)):
                adopted.append(bot.id)
        if loaded and self.settings.tunes_gc:
            freeze_long_lived()  # the adopted bots live as long as the process
        for bot_id in taken:  # stopped between the two reads
            await self.leases.release(bot_id)
        return adopted

    async def hand_out(self, placed: dict[uuid.UUID, str]) -> None:
        """Hand over the bots placed on another replica that asks for them. Only a bot
        between two candles (its lock free) goes; its lock is held until the lease has
        moved, so no booking of it starts here meanwhile, and one waiting for the lock
        finds the bot gone."""
        elsewhere = [b for b in self.handles if placed.get(b, self.replica_id) != self.replica_id]
        if not elsewhere:
            return
        askers = await self.leases.askers(elsewhere)
        moves = {
            bot_id: asker
            for bot_id, asker in askers.items()
            if asker is not None and asker == placed[bot_id]
        }
        held: dict[uuid.UUID, BotHandle] = {}
        try:
            for bot_id in moves:
                handle = self.handles.get(bot_id)
                if handle is not None and not handle.lock.locked():
                    await handle.lock.acquire()  # free: taken without yielding
                    held[bot_id] = handle
            moved = await self.leases.hand_over(
                {bot_id: moves[bot_id] for bot_id in held}, MEMBER_PREFIX
            )
            for bot_id in moved:
                self.drop(bot_id)
                log.info("bot_handed_over", bot_id=str(bot_id), to=moves[bot_id])
        finally:
            for handle in held.values():
                handle.lock.release()

    async def claim(self, key: CandleKey, candle: list[float]) -> None:
        """A candle of a market with bots this replica asked for: adopt those handed over
        since (at once, not at the next sync), then wake them for it."""
        asked = [bot_id for bot_id, market in self.asked.items() if market == key]
        owners = await self.leases.owners(asked)
        handed = {b for b, owner in owners.items() if owner == self.replica_id}
        handed -= set(self.handles)
        if handed and await self.load_and_adopt(handed):
            BOTS_OWNED.set(len(self.handles))
            self.wake(key, candle)

    def adopt(
        self,
        bot: Bot,
        strategy_row: Strategy,
        fingerprint: str,
        *,
        previous: BotHandle | None = None,
    ) -> bool:
        """Run ``bot`` here (again, with fresh settings, when ``previous`` is its handle);
        False if its strategy cannot be built."""
        try:
            strategy: TradingStrategy = create_strategy(
                strategy_row.strategy, strategy_row.parameters
            )
            higher = strategy.higher_timeframes()
            for timeframe in higher:
                check_higher(timeframe_ms(bot.timeframe), timeframe)
        except Exception as exc:
            log.warning("bot_strategy_invalid", bot_id=str(bot.id), error=repr(exc))
            self.spawn(self.failures.fail(bot.user_id, bot.id, f"invalid strategy: {exc}"))
            return False
        handle = (
            BotHandle(
                adapter=Adapter(bot, strategy, self.orders),
                key=CandleKey(bot.exchange, bot.symbol, bot.timeframe),
                warmup=max(1, strategy.warmup),
                higher=higher,
                last_ts=None
                if bot.last_candle_at is None
                else int(bot.last_candle_at.timestamp() * 1000),
                settings=fingerprint,
            )
            if bot.pairs is None
            else portfolio_handle(bot, strategy, self.orders, fingerprint)
        )
        if previous is not None:  # same ownership, same place in the candle stream
            handle.lock, handle.last_ts, handle.flat = previous.lock, previous.last_ts, None
        self.handles[bot.id] = handle
        log.info("bot_adopted", bot_id=str(bot.id), replica=self.replica_id)
        return True

    def drop(self, bot_id: uuid.UUID) -> None:
        self.handles.pop(bot_id, None)
