"""Fixtures of the notification service tests: the service on a real uvicorn server, a fake
user service (contract 1) and a local webhook receiver, all on free ports."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException, Request, Response

from notification_service.main import create_app
from notification_service.settings import NotificationSettings
from shared.events import Event, publish
from tests.servers import UvicornThread, free_port

INTERNAL_TOKEN = "test-internal-token"


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


class FakeUserService:
    """`GET /user/internal/users/{id}` answering the preferences a test sets."""

    def __init__(self) -> None:
        self.preferences: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.app = FastAPI()

        @self.app.get("/user/internal/users/{user_id}")
        async def internal_user(
            user_id: str, x_internal_token: str | None = Header(default=None)
        ) -> dict[str, Any]:
            self.calls += 1
            if x_internal_token != INTERNAL_TOKEN:
                raise HTTPException(401)
            if user_id not in self.preferences:
                raise HTTPException(404)
            return {
                "id": user_id,
                "email": f"{user_id}@example.com",
                "permissions": ["trade:paper"],
                "trading_limits": {},
                "preferences": self.preferences[user_id],
            }


@dataclass
class ReceivedCall:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class WebhookReceiver:
    """A local webhook endpoint; ``fail_next[path] = n`` answers 500 to the next n calls."""

    url: str = ""
    calls: list[ReceivedCall] = field(default_factory=list)
    accepted: list[ReceivedCall] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)
    delay_s: dict[str, float] = field(default_factory=dict)

    def reset(self) -> None:
        self.calls.clear()
        self.accepted.clear()
        self.fail_next.clear()
        self.delay_s.clear()

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{name}")
        async def hook(name: str, request: Request) -> Response:
            call = ReceivedCall(f"/hooks/{name}", dict(request.headers), await request.body())
            self.calls.append(call)
            await asyncio.sleep(self.delay_s.get(call.path, 0.0))
            if self.fail_next.get(call.path, 0) > 0:
                self.fail_next[call.path] -= 1
                return Response(status_code=500)
            self.accepted.append(call)
            return Response(status_code=204)

        return app


@pytest.fixture(scope="session")
def fake_users() -> Any:
    fake = FakeUserService()
    server = UvicornThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture(scope="session")
def receiver_server() -> Any:
    receiver = WebhookReceiver()
    server = UvicornThread(receiver.build()).start()
    receiver.url = server.url
    yield receiver
    server.stop()


@pytest.fixture
def receiver(receiver_server: WebhookReceiver) -> WebhookReceiver:
    receiver_server.reset()
    return receiver_server


@pytest.fixture
def users(fake_users: FakeUserService) -> FakeUserService:
    fake_users.preferences.clear()
    fake_users.calls = 0
    return fake_users


def make_settings(user_service_url: str, **overrides: Any) -> NotificationSettings:
    values: dict[str, Any] = {
        "user_service_urls": user_service_url,
        "internal_api_token": INTERNAL_TOKEN,
        "webhook_allowed_networks": "127.0.0.0/8",  # the tests' receivers are local
        "webhook_retry_base_s": 0.05,
        "webhook_poll_interval_s": 0.2,
        "event_retry_delay_s": 0.05,
        "event_claim_idle_ms": 1000,
        "preferences_cache_ttl_s": 0.0,
        "consumer_concurrency": 2,
        **overrides,
    }
    return NotificationSettings(**values)


@pytest.fixture
def settings(users: FakeUserService) -> NotificationSettings:
    return make_settings(users.url)  # type: ignore[attr-defined]


@pytest.fixture
async def service(settings: NotificationSettings) -> AsyncIterator[UvicornThread]:
    """The notification service on a real uvicorn server, consumers running."""
    async with UvicornThread(create_app(settings)) as server:
        yield server


@pytest.fixture
async def client(service: UvicornThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        yield http


def trade_event(user_id: uuid.UUID, **data: Any) -> Event:
    payload = {
        "trade_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "user_id": str(user_id),
        "bot_id": None,
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "price": "50000.00000000",
        "quantity": "0.01000000",
        "fee": "0.50000000",
        "fee_currency": "USDT",
        "pnl": None,
        "mode": "paper",
        "strategy": None,
        "executed_at": "2026-11-25T05:00:00+00:00",
        **data,
    }
    return Event(type="trade.executed", data=payload, source="trading")


__all__ = ["eventually", "free_port", "publish", "trade_event"]
