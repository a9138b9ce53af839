"""Which running bots this replica runs: a sync loop reconciles with PostgreSQL every
``BOT_SYNC_INTERVAL_S``. It takes leases on running bots nobody owns (start, restart, a
dead replica's bots), drops stopped ones, renews its leases, rebuilds the adapter of a bot
edited while it runs, and replays the latest candle to any bot that has not seen it (the
bot row's ``last_candle_at`` and deterministic client order ids mean a candle is never
applied twice). Live orders left open are reconciled from the same loop."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.heap import freeze_long_lived
from shared.strategies import TradingStrategy, create_strategy
from trading_engine.bots import repository
from trading_engine.bots.adapter import Adapter
from trading_engine.bots.candles import CandleKey
from trading_engine.bots.failures import BotFailures
from trading_engine.bots.handle import BotHandle
from trading_engine.bots.intake import LATEST_CANDLES_KEY
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.metrics import BOTS_OWNED
from trading_engine.bots.service import SUBSCRIPTIONS_KEY
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
        self.replica_id = replica_id
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
                log.warning("bot_sync_failed", error=repr(exc))
            await asyncio.sleep(self.settings.bot_sync_interval_s)

    async def sync(self) -> None:
        """Reconcile owned bots with the database and the leases; replay missed candles."""
        lost = await self.leases.renew(self.handles)
        for bot_id in lost:
            log.warning("bot_lease_lost", bot_id=str(bot_id))
            self.drop(bot_id)
        async with unit_of_work(self.sessionmaker) as session:
            await resume_due(session)  # daily-loss pauses whose UTC day has passed
        async with self.sessionmaker() as session:
            wanted = await repository.running_fingerprints(session)
        for bot_id in [b for b in self.handles if b not in wanted]:
            await self.leases.release(bot_id)
            self.drop(bot_id)
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
            self.adopt(bot, strategy, fingerprint, previous=self.handles.get(bot.id))
        if loaded and self.settings.tunes_gc:
            freeze_long_lived()  # the adopted bots live as long as the process
        for bot_id in taken:  # stopped between the two reads
            await self.leases.release(bot_id)
        self.spawn(
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

    def adopt(
        self,
        bot: Bot,
        strategy_row: Strategy,
        fingerprint: str,
        *,
        previous: BotHandle | None = None,
    ) -> None:
        """Run ``bot`` here (again, with fresh settings, when ``previous`` is its handle)."""
        try:
            strategy: TradingStrategy = create_strategy(
                strategy_row.strategy, strategy_row.parameters
            )
        except Exception as exc:
            log.warning("bot_strategy_invalid", bot_id=str(bot.id), error=repr(exc))
            self.spawn(self.failures.fail(bot.user_id, bot.id, f"invalid strategy: {exc}"))
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

    def drop(self, bot_id: uuid.UUID) -> None:
        self.handles.pop(bot_id, None)
