"""The api gateway: routing, JWT check, rate limit, breakers, WebSocket proxy."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.settings import GatewaySettings, get_settings
from shared.app import create_service_app


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot API gateway",
        description="Routing, JWT check, rate limit, breakers, WebSocket proxy.",
        routers=[],
        use_database=False,
    )
