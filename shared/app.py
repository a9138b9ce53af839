"""``create_service_app``: the one way a TradeBot service is assembled.

The lifespan owns every client: it opens the database engine and the Redis client, runs
the outbox relay and the processed-event retention sweep, enters the service's own
background components (consumers, feeds, bot runners) and closes all of them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from shared import tracing
from shared.cancellation import cancel_and_wait
from shared.db import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    ping_database,
)
from shared.errors import install_error_handlers
from shared.events import run_outbox_relay, run_processed_events_pruner
from shared.health import HealthCheck, ops_router
from shared.heap import freeze_long_lived, tune_collections
from shared.logging import RequestLogMiddleware, configure_logging
from shared.redis import create_redis
from shared.settings import ServiceSettings

# A component started with the app: gets the app (its state holds the clients).
Component = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    components: Sequence[Component] = (),
    use_database: bool = True,
    cors_origins: Sequence[str] = (),
    description: str = "",
    app_class: type[FastAPI] = FastAPI,
) -> FastAPI:
    """A FastAPI app with health, metrics, problem details, request logs and pools."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json)
        redis = create_redis(settings.redis_url)
        app.state.redis = redis
        checks: dict[str, HealthCheck] = {"redis": redis.ping}
        # The outbox relay and the processed-event retention sweep (with a database).
        housekeeping: list[asyncio.Task[None]] = []
        engine = None
        if use_database:
            engine = create_engine(
                settings.database_url,
                pool_size=settings.database_pool_size,
                pool_timeout=settings.database_pool_timeout_seconds,
            )
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine, redis)
            app.state.read_sessionmaker = create_read_sessionmaker(engine)
            checks = {"database": lambda: ping_database(engine), **checks}
            housekeeping = [
                asyncio.create_task(run_outbox_relay(app.state.sessionmaker, redis)),
                asyncio.create_task(
                    run_processed_events_pruner(
                        app.state.sessionmaker, keep_days=settings.processed_events_retention_days
                    )
                ),
            ]
        app.state.health_checks = checks
        try:
            async with contextlib.AsyncExitStack() as stack:
                for component in components:
                    await stack.enter_async_context(component(app))
                if settings.tunes_gc:
                    # Once everything has started (shared/heap.py): the start-up heap
                    # (ccxt, numpy, SQLAlchemy, pydantic: ~300k objects) out of the cyclic
                    # GC's view, and the young generation collected less often. Without
                    # it full collections walked that heap over and over under load.
                    freeze_long_lived(full=True)
                    tune_collections()
                yield
        finally:
            await cancel_and_wait(housekeeping)
            await redis.aclose()
            if engine is not None:
                await engine.dispose()
            await asyncio.to_thread(tracing.flush)

    # Traces when an OTLP endpoint is configured (shared/tracing.py); FastAPI's own
    # telemetry makes each request's server span, or is switched off.
    tracing.configure(settings)
    app = app_class(
        title=title,
        description=description,
        lifespan=lifespan,
        telemetry=tracing.fastapi_telemetry(),  # type: ignore[arg-type]
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(ops_router())
    for router in routers:
        app.include_router(router)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )
    app.add_middleware(RequestLogMiddleware, service=settings.service_name)
    return app
