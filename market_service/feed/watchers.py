"""Upstream watchers: one task per (exchange, symbol) that somebody needs.

Demand comes from WebSocket subscribers on this replica and from the candle watch
registry (docs/events.md: the Redis set ``subscriptions:candles`` of
``{exchange}|{symbol}|{timeframe}``). A replica with demand competes for the Redis lease
``market:feed:lease:{exchange}:{symbol}``; the holder runs the upstream loop (the sim's own
clock, or REST polling for ccxt exchanges), so each tick and each closed candle is published
once however many replicas run. When the holder dies its lease expires and another replica
with demand takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market_service.exchanges import TIMEFRAME_MS, Candle, ExchangeError, ExchangeRegistry
from market_service.exchanges.base import MarketExchange, Ticker
from market_service.exchanges.ccxt_exchange import CcxtExchange
from market_service.exchanges.sim import SimExchange
from market_service.feed.stream import channel_for
from market_service.ohlcv import repository
from market_service.ohlcv.service import bucket_floor
from market_service.settings import MarketSettings
from market_service.tickers.cache import ticker_fields, ticker_key
from shared.cancellation import raise_if_cancelling
from shared.db import unit_of_work
from shared.events import MARKET_DATA_UPDATED, Event, publish

log = structlog.get_logger("feed")


CANDLE_REGISTRY = "subscriptions:candles"
FEED_TIMEFRAME = "1m"  # candle frames WebSocket subscribers get

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def lease_key(exchange: str, symbol: str) -> str:
    return f"market:feed:lease:{exchange}:{symbol}"


@dataclass
class Demand:
    subscribers: int = 0
    candle_timeframes: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return self.subscribers <= 0 and not self.candle_timeframes


class FeedWatchers:
    def __init__(
        self,
        redis: Redis,
        registry: ExchangeRegistry,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        settings: MarketSettings,
        instance_id: str,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.instance_id = instance_id
        self.demand: dict[tuple[str, str], Demand] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._registry_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        # One stop flag per watcher: cancel() alone is not enough, since redis-py may
        # swallow a cancellation and a zombie watcher would keep publishing.
        self._stops: dict[tuple[str, str], asyncio.Event] = {}

    # -- demand -------------------------------------------------------------------------

    def want(self, exchange: str, symbol: str) -> None:
        self.demand.setdefault((exchange, symbol), Demand()).subscribers += 1
        self._reconcile((exchange, symbol))

    def unwant(self, exchange: str, symbol: str) -> None:
        demand = self.demand.get((exchange, symbol))
        if demand is not None:
            demand.subscribers -= 1
            self._reconcile((exchange, symbol))

    def _reconcile(self, key: tuple[str, str]) -> None:
        demand = self.demand.get(key)
        running = self.tasks.get(key)
        if demand is None or demand.empty:
            self.demand.pop(key, None)
            if running is not None:
                self._stops.pop(key).set()
                running.cancel()
                self.tasks.pop(key, None)
        elif running is None or running.done():
            stop = self._stops[key] = asyncio.Event()
            self.tasks[key] = asyncio.create_task(self._supervise(*key, stop), name=f"watch:{key}")

    async def start(self) -> None:
        self._registry_task = asyncio.create_task(self._watch_registry(), name="candle-registry")

    async def stop(self) -> None:
        # A flag as well as cancel(): client libraries may swallow a cancellation.
        self._stop.set()
        for event in self._stops.values():
            event.set()
        tasks = [t for t in [self._registry_task, *self.tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self.tasks.clear()

    async def _watch_registry(self) -> None:
        """Keep a watcher for every member of ``subscriptions:candles`` (docs/events.md)."""
        while not self._stop.is_set():
            try:
                await self.sync_registry()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()
                log.warning("candle_registry_error", error=repr(exc))
            await self._pause(self.settings.candle_registry_interval, self._stop)

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        """Sleep, waking at once when ``stop`` is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def sync_registry(self) -> None:
        members: set[str] = await self.redis.smembers(CANDLE_REGISTRY)  # type: ignore[assignment]
        wanted: dict[tuple[str, str], set[str]] = {}
        for member in members:
            parts = member.split("|")
            if len(parts) != 3 or parts[0] not in self.registry.ids or parts[2] not in TIMEFRAME_MS:
                log.warning("candle_registry_member_ignored", member=member)
                continue
            wanted.setdefault((parts[0], parts[1]), set()).add(parts[2])
        for key in set(self.demand) | set(wanted):
            timeframes = wanted.get(key, set())
            demand = self.demand.get(key)
            if demand is None:
                if not timeframes:
                    continue
                demand = self.demand[key] = Demand()
            if demand.candle_timeframes != timeframes:
                demand.candle_timeframes = timeframes
            self._reconcile(key)

    # -- lease + upstream loop ----------------------------------------------------------

    async def _supervise(self, exchange_id: str, symbol: str, stop: asyncio.Event) -> None:
        key = lease_key(exchange_id, symbol)
        ttl = self.settings.feed_lease_ms
        pause = ttl / 3000
        try:
            while not stop.is_set():
                acquired = await self._try(self.redis.set(key, self.instance_id, nx=True, px=ttl))
                if not acquired:
                    await self._pause(pause, stop)
                    continue
                # The upstream loop has its own flag, set when the lease is lost or the
                # watcher stops, so it can never outlive its lease.
                upstream_stop = asyncio.Event()
                upstream = asyncio.create_task(self._upstream(exchange_id, symbol, upstream_stop))
                try:
                    while not upstream.done() and not stop.is_set():
                        await self._pause(pause, stop)
                        renewed = await self._try(
                            self.redis.eval(_RENEW, 1, key, self.instance_id, str(ttl))  # type: ignore[misc,unused-ignore]
                        )
                        if not renewed:
                            log.warning("feed_lease_lost", exchange=exchange_id, symbol=symbol)
                            break
                finally:
                    upstream_stop.set()
                    upstream.cancel()
                    await asyncio.wait({upstream}, timeout=5)
                if upstream.done() and not upstream.cancelled() and upstream.exception():
                    log.warning(
                        "feed_upstream_failed",
                        exchange=exchange_id,
                        symbol=symbol,
                        error=repr(upstream.exception()),
                    )
                    await self._pause(self.settings.feed_poll_interval * 5, stop)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.redis.eval(_RELEASE, 1, key, self.instance_id))  # type: ignore[misc,unused-ignore]

    async def _try(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelling()
            log.warning("feed_redis_error", error=repr(exc))
            return None

    async def _upstream(self, exchange_id: str, symbol: str, stop: asyncio.Event) -> None:
        exchange = self.registry.get(exchange_id)
        await exchange.market(symbol)
        if isinstance(exchange, SimExchange):
            await self._run_sim(exchange, symbol, stop)
            return
        if isinstance(exchange, CcxtExchange) and exchange.can_watch:
            try:
                await self._run_stream(exchange, symbol, stop)
            except ExchangeError as exc:
                raise_if_cancelling()
                log.warning("feed_stream_failed_polling", exchange=exchange.id, error=exc.detail)
        await self._run_polling(exchange, symbol, stop)

    def _timeframes(self, exchange_id: str, symbol: str) -> set[str]:
        demand = self.demand.get((exchange_id, symbol))
        return {FEED_TIMEFRAME} | (demand.candle_timeframes if demand else set())

    async def _run_sim(self, sim: SimExchange, symbol: str, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.sim_tick_interval
        last_bucket: dict[str, int] = {}
        next_at = loop.time()
        while not stop.is_set():
            now = sim.now_ms()
            await self._publish_tick(sim.ticker_at(symbol, now))
            await self._close_candles(
                sim, symbol, now, last_bucket, lambda tf, at: _sim_candle(sim, symbol, tf, at)
            )
            next_at += interval
            delay = next_at - loop.time()
            if delay < -interval:  # fell behind (a stall): do not burst to catch up
                next_at = loop.time()
            await asyncio.sleep(max(0.0, delay))

    async def _run_stream(self, exchange: CcxtExchange, symbol: str, stop: asyncio.Event) -> None:
        """Ticks from the exchange's own WebSocket (ccxt.pro); candles closed by REST."""
        last_bucket: dict[str, int] = {}

        async def closed(tf: str, at: int) -> Candle | None:
            rows = await exchange.fetch_ohlcv(symbol, tf, at, 2)
            return next((c for c in rows if int(c[0]) == at), None)

        while not stop.is_set():
            ticker = await exchange.watch_ticker(symbol)
            await self._publish_tick(ticker)
            await self._close_candles(exchange, symbol, exchange.now_ms(), last_bucket, closed)

    async def _run_polling(
        self, exchange: MarketExchange, symbol: str, stop: asyncio.Event
    ) -> None:
        last_bucket: dict[str, int] = {}

        async def closed(tf: str, at: int) -> Candle | None:
            rows = await exchange.fetch_ohlcv(symbol, tf, at, 2)
            return next((c for c in rows if int(c[0]) == at), None)

        while not stop.is_set():
            try:
                ticker = await exchange.fetch_ticker(symbol)
                await self._publish_tick(ticker)
                await self._close_candles(exchange, symbol, exchange.now_ms(), last_bucket, closed)
            except ExchangeError as exc:
                log.warning(
                    "feed_poll_failed", exchange=exchange.id, symbol=symbol, error=exc.detail
                )
            await self._pause(self.settings.feed_poll_interval, stop)

    async def _publish_tick(self, ticker: Ticker) -> None:
        frame = orjson.dumps({"type": "ticker", **ticker.to_json()})
        key = ticker_key(ticker.exchange, ticker.symbol)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.publish(channel_for(ticker.exchange, ticker.symbol), frame)
            pipe.hset(key, mapping=ticker_fields(ticker))  # type: ignore[arg-type]
            pipe.pexpire(key, int(self.settings.ticker_ttl_seconds * 1000))
            await pipe.execute()

    async def _close_candles(
        self,
        exchange: MarketExchange,
        symbol: str,
        now_ms: int,
        last_bucket: dict[str, int],
        closed_candle: Callable[[str, int], Awaitable[Candle | None]],
    ) -> None:
        """Publish every candle that closed since the previous call, per timeframe."""
        for tf in sorted(self._timeframes(exchange.id, symbol)):
            bucket = bucket_floor(now_ms, tf)
            previous = last_bucket.get(tf)
            last_bucket[tf] = bucket
            if previous is None or bucket <= previous:
                continue
            step = TIMEFRAME_MS[tf]
            for at in range(max(previous, bucket - 50 * step), bucket, step):
                candle = await closed_candle(tf, at)
                if candle is not None:
                    await self._publish_candle(exchange.id, symbol, tf, candle)

    async def _publish_candle(
        self, exchange: str, symbol: str, timeframe: str, candle: Candle
    ) -> None:
        data = {"exchange": exchange, "symbol": symbol, "timeframe": timeframe, "candle": candle}
        await self.redis.publish(
            channel_for(exchange, symbol), orjson.dumps({"type": "candle", **data})
        )
        await publish(self.redis, Event(type=MARKET_DATA_UPDATED, data=data, source="market"))
        if self.sessionmaker is not None:
            try:
                async with unit_of_work(self.sessionmaker) as session:
                    await repository.upsert_candles(session, exchange, symbol, timeframe, [candle])
            except Exception as exc:  # history is best effort here; gaps are refetched later
                raise_if_cancelling()
                log.warning("candle_store_failed", error=repr(exc))


async def _sim_candle(sim: SimExchange, symbol: str, timeframe: str, at: int) -> Candle | None:
    rows = sim.ohlcv(symbol, timeframe, at, 1)
    return rows[0] if rows and int(rows[0][0]) == at else None
