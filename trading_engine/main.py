"""The trading engine: strategies, bots, orders, positions, paper and live brokers, risk."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from trading_engine.settings import TradingSettings, get_settings


def create_app(settings: TradingSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Trading engine",
        description="Strategies, bots, orders, positions, paper and live brokers, risk.",
        routers=[],
        use_database=True,
    )
