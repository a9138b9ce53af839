"""The user service: accounts, JWT sessions, preferences, limits, exchange keys."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from user_service.accounts.router import router as accounts_router
from user_service.auth.router import router as auth_router
from user_service.exchange_keys.router import router as exchange_keys_router
from user_service.internal.router import router as internal_router
from user_service.key_vault import KeyVault
from user_service.settings import UserSettings, get_settings


def create_app(settings: UserSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="TradeBot User service",
        description="Accounts, JWT sessions, preferences, limits, exchange keys.",
        routers=[auth_router, accounts_router, exchange_keys_router, internal_router],
        use_database=True,
    )
    key = settings.encryption_key
    app.state.key_vault = KeyVault(key.get_secret_value()) if key is not None else None
    return app
