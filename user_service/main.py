"""The user service: accounts, JWT sessions, preferences, limits, exchange keys."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from user_service.settings import UserSettings, get_settings


def create_app(settings: UserSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot User service",
        description="Accounts, JWT sessions, preferences, limits, exchange keys.",
        routers=[],
        use_database=True,
    )
