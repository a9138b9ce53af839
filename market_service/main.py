"""The market data service: exchanges via ccxt and the sim exchange, cache, history, live feed."""

from __future__ import annotations

from fastapi import FastAPI

from market_service.settings import MarketSettings, get_settings
from shared.app import create_service_app


def create_app(settings: MarketSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Market data service",
        description="Exchanges via ccxt and the sim exchange, cache, history, live feed.",
        routers=[],
        use_database=True,
    )
