"""The analysis service (:8001): indicators, backtests, signals, performance.

Routes: ``POST|GET /analysis/indicators``, ``POST /analysis/backtests``,
``GET /analysis/backtests[/{id}]``, ``POST|GET|DELETE /analysis/optimisations[/{id}]``,
``GET /analysis/signals``, ``GET /analysis/performance``.
Background (owned by the lifespan): the HTTP client to the market service, the backtest
workers on the job stream (:mod:`analysis_service.backtests.worker`), the optimisation
workers (:mod:`analysis_service.optimisations.worker`) and the consumer of
``trade.executed`` into ``performance_trades``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from analysis_service.backtests.router import router as backtests_router
from analysis_service.backtests.worker import run_backtest_workers
from analysis_service.indicators.router import router as indicators_router
from analysis_service.market import MarketClient
from analysis_service.optimisations.router import internal as optimisations_internal_router
from analysis_service.optimisations.router import router as optimisations_router
from analysis_service.optimisations.worker import run_optimisation_workers
from analysis_service.performance.router import router as performance_router
from analysis_service.performance.service import record_trade
from analysis_service.settings import AnalysisSettings, get_settings
from analysis_service.signals.router import router as signals_router
from shared.app import Component, create_service_app
from shared.cancellation import cancel_and_wait
from shared.events import TRADE_EXECUTED, EventConsumer, stream_for
from shared.service_client import ServiceClient


def market_component(transport: httpx.AsyncBaseTransport | None = None) -> Component:
    @contextlib.asynccontextmanager
    async def _market(app: FastAPI) -> AsyncIterator[None]:
        settings: AnalysisSettings = app.state.settings
        async with ServiceClient(
            "market",
            settings.market_service_urls,
            caller="analysis",
            timeout_s=settings.market_timeout_s,
            breaker_failures=settings.market_breaker_failures,
            breaker_reset_s=settings.market_breaker_reset_s,
            transport=transport,
        ) as http:
            app.state.market = MarketClient(
                http,
                page_limit=settings.market_page_limit,
                bulk_timeout_s=settings.market_bulk_timeout_s,
            )
            yield

    return _market


@contextlib.asynccontextmanager
async def trade_consumer(app: FastAPI) -> AsyncIterator[None]:
    """``trade.executed`` -> ``performance_trades`` (consumer group ``analysis``)."""
    settings: AnalysisSettings = app.state.settings
    consumer = EventConsumer(
        app.state.redis,
        app.state.sessionmaker,
        group="analysis",
        handlers={stream_for(TRADE_EXECUTED): record_trade},
        claim_idle_ms=settings.event_claim_idle_ms,
        max_failures=settings.event_max_failures,
    )
    app.state.trade_consumer = consumer
    task = asyncio.create_task(consumer.run(), name="trade-consumer")
    try:
        yield
    finally:
        await cancel_and_wait([task])


def create_app(
    settings: AnalysisSettings | None = None,
    *,
    market_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Analysis service",
        description="Indicators, backtests, strategy optimisation, signals, performance.",
        routers=[
            indicators_router,
            backtests_router,
            optimisations_router,
            optimisations_internal_router,
            signals_router,
            performance_router,
        ],
        components=[
            market_component(market_transport),
            run_backtest_workers,
            run_optimisation_workers,
            trade_consumer,
        ],
        use_database=True,
    )
