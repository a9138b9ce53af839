"""The trading engine: strategies, bots, orders, positions, paper and live brokers, risk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.app import create_service_app
from shared.service_client import ServiceClient
from trading_engine.analysis_client import AnalysisClient
from trading_engine.bots.router import router as bots_router
from trading_engine.bots.runner import bot_runner
from trading_engine.brokers.live import LiveBroker
from trading_engine.market_client import MarketClient
from trading_engine.orders.router import router as orders_router
from trading_engine.orders.service import OrderService
from trading_engine.portfolio.router import router as balances_router
from trading_engine.settings import TradingSettings, get_settings
from trading_engine.strategies.router import router as strategies_router
from trading_engine.user_client import UserClient


@asynccontextmanager
async def trading_clients(app: FastAPI) -> AsyncIterator[None]:
    """The market, user and analysis service clients, the live broker and the order
    service."""
    settings: TradingSettings = app.state.settings
    live = LiveBroker(settings.live_exchange_urls)
    async with (
        ServiceClient(
            "market",
            settings.market_service_urls,
            caller="trading",
            timeout_s=settings.http_timeout_s,
        ) as market_http,
        ServiceClient(
            "user",
            settings.user_service_urls,
            caller="trading",
            internal_token=settings.internal_api_token,
            timeout_s=settings.http_timeout_s,
        ) as user_http,
        ServiceClient(
            "analysis",
            settings.analysis_service_urls,
            caller="trading",
            internal_token=settings.internal_api_token,
            timeout_s=settings.http_timeout_s,
        ) as analysis_http,
    ):
        app.state.analysis = AnalysisClient(analysis_http)
        app.state.order_service = OrderService(
            sessionmaker=app.state.sessionmaker,
            redis=app.state.redis,
            market=MarketClient(market_http, book_ttl_s=settings.order_book_ttl_s),
            users=UserClient(user_http, account_ttl_s=settings.account_cache_ttl_s),
            live=live,
            settings=settings,
        )
        try:
            yield
        finally:
            await live.aclose()


def create_app(settings: TradingSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Trading engine",
        description="Strategies, bots, orders, positions, paper and live brokers, risk.",
        routers=[strategies_router, bots_router, orders_router, balances_router],
        components=[trading_clients, bot_runner],
        use_database=True,
    )
