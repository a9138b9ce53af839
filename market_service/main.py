"""The market data service: exchanges via ccxt and the sim exchange, cache, history, live feed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from market_service.exchanges import ExchangeRegistry, build_registry
from market_service.feed.router import router as feed_router
from market_service.feed.stream import MarketDataStream
from market_service.feed.watchers import FeedWatchers
from market_service.ohlcv.bulk_router import router as ohlcv_bulk_router
from market_service.ohlcv.router import router as ohlcv_router
from market_service.pairs.router import router as pairs_router
from market_service.pairs.service import sync_pairs
from market_service.settings import MarketSettings, get_settings
from market_service.singleflight import SingleFlight
from market_service.tickers.cache import TickerCache
from market_service.tickers.router import router as tickers_router
from market_service.tickers.service import TickerService
from shared.app import create_service_app
from shared.cancellation import raise_if_cancelling
from shared.db import unit_of_work

log = structlog.get_logger("market")
SIM_ANCHOR_KEY = "market:sim:anchor"


async def sim_anchor(app: FastAPI) -> int:
    """The sim clock's anchor, shared by every replica through Redis (set once)."""
    now = int(time.time() * 1000)
    try:
        await app.state.redis.set(SIM_ANCHOR_KEY, now, nx=True)
        stored = await app.state.redis.get(SIM_ANCHOR_KEY)
    except (RedisError, OSError) as exc:
        # Start anyway (health says redis: down); this replica keeps its own anchor.
        log.warning("sim_anchor_unshared", error=repr(exc))
        return now
    return int(stored) if stored else now


async def keep_pairs_in_sync(
    app: FastAPI, registry: ExchangeRegistry, every: float, stopping: asyncio.Event
) -> None:
    """Load each exchange's markets and mirror them in `trading_pairs`, then refresh."""
    pending = set(registry.ids)
    while not stopping.is_set():
        for exchange in registry:
            try:
                async with unit_of_work(app.state.sessionmaker) as session:
                    count = await sync_pairs(session, exchange)
                pending.discard(exchange.id)
                log.info("pairs_synced", exchange=exchange.id, pairs=count)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()
                log.warning("pairs_sync_failed", exchange=exchange.id, error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 60.0 if pending else every)


def exchanges_component(settings: MarketSettings) -> Any:
    @asynccontextmanager
    async def component(app: FastAPI) -> AsyncIterator[None]:
        anchor = await sim_anchor(app) if "sim" in settings.exchange_ids else None
        registry = build_registry(settings, sim_anchor_ms=anchor)
        app.state.exchanges = registry
        app.state.flights = SingleFlight()
        app.state.tickers = TickerService(
            TickerCache(app.state.redis), registry, app.state.flights, settings
        )

        async def exchange_health() -> None:
            down = [ex.id for ex in registry if not ex.is_available()]
            if down:
                raise RuntimeError(f"exchange down: {', '.join(down)}")

        async def exchange_details() -> dict[str, Any]:
            return {"exchanges": {ex.id: "up" if ex.is_available() else "down" for ex in registry}}

        app.state.health_checks["exchange"] = exchange_health
        app.state.health_details = exchange_details
        stopping = asyncio.Event()
        sync = asyncio.create_task(
            keep_pairs_in_sync(app, registry, settings.markets_refresh_seconds, stopping)
        )
        try:
            yield
        finally:
            stopping.set()
            sync.cancel()
            await asyncio.wait({sync}, timeout=5)
            await registry.close()

    return component


def feed_component(settings: MarketSettings) -> Any:
    @asynccontextmanager
    async def component(app: FastAPI) -> AsyncIterator[None]:
        instance = uuid.uuid4().hex[:12]
        # The feed's own pool, blocking when busy: a burst of thousands of subscribers
        # waits for a connection instead of failing with "too many connections".
        feed_redis: Redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=64,
                timeout=5,
                decode_responses=True,
                socket_connect_timeout=2.0,
                health_check_interval=30,
            )
        )
        watchers = FeedWatchers(
            feed_redis, app.state.exchanges, app.state.sessionmaker, settings, instance
        )
        stream = MarketDataStream(
            feed_redis, watchers, instance, heartbeat_seconds=settings.ws_heartbeat_seconds
        )
        app.state.feed = stream
        app.state.watchers = watchers
        await stream.start()
        await watchers.start()
        try:
            yield
        finally:
            await watchers.stop()
            await stream.stop()
            await feed_redis.aclose()

    return component


def create_app(settings: MarketSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Market data service",
        description="Exchanges via ccxt and the sim exchange, cache, history, live feed.",
        routers=[pairs_router, tickers_router, ohlcv_router, ohlcv_bulk_router, feed_router],
        components=[
            exchanges_component(settings),
            feed_component(settings),
        ],
        use_database=True,
    )
