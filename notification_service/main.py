"""The notification service (:8002): stored, live and webhook notifications.

Routes: ``GET /notifications`` (paged, ``unread`` filter), ``GET /notifications/{id}``,
``POST /notifications/{id}/read``, ``POST /notifications/read-all``, ``WS /notifications/ws``,
CRUD ``/notifications/webhooks`` (+ ``/{id}/deliveries``). Background: the consumer group
(:mod:`notification_service.consumers`), the live pub/sub hub and publisher
(:mod:`notification_service.live.hub`) and the webhook dispatcher
(:mod:`notification_service.webhooks.dispatcher`), all owned by the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from notification_service.consumers import NotificationIntake, run_consumers
from notification_service.live.hub import LiveHub, LivePublisher
from notification_service.live.router import router as live_router
from notification_service.notifications.router import router as notifications_router
from notification_service.preferences import PreferenceDirectory
from notification_service.settings import NotificationSettings, get_settings
from notification_service.webhooks.dispatcher import WebhookDispatcher
from notification_service.webhooks.router import router as webhooks_router
from shared.app import create_service_app
from shared.cancellation import cancel_and_wait
from shared.service_client import ServiceClient


@contextlib.asynccontextmanager
async def _background(app: FastAPI) -> AsyncIterator[None]:
    """Start the hub, the publisher, the dispatcher and the consumers; stop them in reverse."""
    settings: NotificationSettings = app.state.settings
    redis = app.state.redis
    hub = LiveHub(redis, queue_size=settings.ws_queue_size)
    publisher = LivePublisher(redis)
    async with (
        httpx.AsyncClient(follow_redirects=False, trust_env=False) as webhook_client,
        ServiceClient(
            "user",
            settings.user_service_urls,
            caller="notification",
            internal_token=settings.internal_api_token,
            timeout_s=settings.user_service_timeout_s,
            # No retries: a notification falls back to every channel at once instead.
            read_attempts=1,
            breaker_failures=3,
            breaker_reset_s=5.0,
        ) as user_http,
    ):
        dispatcher = WebhookDispatcher(app.state.sessionmaker, settings, webhook_client)
        directory = PreferenceDirectory(user_http, ttl_s=settings.preferences_cache_ttl_s)
        intake = NotificationIntake(directory, publisher, dispatcher.wake)
        app.state.live_hub = hub
        app.state.dispatcher = dispatcher
        app.state.preferences = directory
        tasks = [
            asyncio.create_task(hub.run(), name="live-hub"),
            asyncio.create_task(publisher.run(), name="live-publisher"),
            asyncio.create_task(dispatcher.run(), name="webhook-dispatcher"),
        ]
        try:
            async with run_consumers(app, intake, settings) as consumers:
                app.state.consumers = consumers
                yield
        finally:
            with contextlib.suppress(Exception):
                await publisher.drain()
            await cancel_and_wait(tasks)


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Notification service",
        description="Stored, live and webhook notifications.",
        # Webhook and WS routes first: `/notifications/{id}` must not shadow them.
        routers=[webhooks_router, live_router, notifications_router],
        components=[_background],
        use_database=True,
    )
