"""The notification service: stored, live and webhook notifications."""

from __future__ import annotations

from fastapi import FastAPI

from notification_service.settings import NotificationSettings, get_settings
from shared.app import create_service_app


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Notification service",
        description="Stored, live and webhook notifications.",
        routers=[],
        use_database=True,
    )
