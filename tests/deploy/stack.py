"""The running stack the observability tests share: the six services as processes,
exporting their traces to an in-memory OTLP collector; the gateway's analysis upstream
lists a second replica that is down (its failures, breaker and failover show in the
metrics) and its rate limit is low enough to be reached; a webhook receiver on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.otlp_collector import OtlpCollector
from tests.servers import (
    SERVICE_URL_SETTINGS,
    ServiceProcess,
    UvicornThread,
    free_port,
    running_services,
)

SERVICES = ["user", "market", "analysis", "trading", "notification"]
RATE_LIMIT_PER_MINUTE = 40
PASSWORD = "correct horse battery 9"


@dataclass
class WebhookReceiver:
    """Answers 200 to every delivery and keeps the bodies."""

    deliveries: list[bytes] = field(default_factory=list)
    server: UvicornThread | None = None

    async def receive(self, request: Request) -> Response:
        self.deliveries.append(await request.body())
        return Response(status_code=200)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/hook"


@dataclass
class Stack:
    urls: dict[str, str]
    collector: OtlpCollector
    webhooks: WebhookReceiver
    redis_url: str


@contextmanager
def running_stack(env: dict[str, str]) -> Iterator[Stack]:
    webhooks = WebhookReceiver()
    app = Starlette(routes=[Route("/hook", webhooks.receive, methods=["POST"])])
    with OtlpCollector() as collector:
        webhooks.server = UvicornThread(app).start()  # type: ignore[arg-type]
        traced = {
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
            "WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
        }
        try:
            with running_services(SERVICES, traced) as urls:
                dead_replica = f"http://127.0.0.1:{free_port()}"
                gateway = ServiceProcess(
                    "gateway",
                    env={
                        **traced,
                        **{SERVICE_URL_SETTINGS[name]: url for name, url in urls.items()},
                        "ANALYSIS_SERVICE_URLS": f"{urls['analysis']},{dead_replica}",
                        "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
                        # Each test is a client of its own (X-Forwarded-For), with its own
                        # anonymous budget.
                        "TRUSTED_PROXIES": "127.0.0.1",
                    },
                ).start()
                try:
                    yield Stack(
                        {**urls, "gateway": gateway.url}, collector, webhooks, env["REDIS_URL"]
                    )
                finally:
                    gateway.stop()
        finally:
            webhooks.server.stop()


def client_of(stack: Stack, address: str) -> httpx.AsyncClient:
    """A client of the gateway that the gateway takes to be at ``address``."""
    return httpx.AsyncClient(
        base_url=stack.urls["gateway"], headers={"X-Forwarded-For": address}, timeout=30
    )


async def signed_up(gateway: httpx.AsyncClient) -> dict[str, str]:
    """A new user, registered and logged in through the gateway: its bearer header."""
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    registered = await gateway.post(
        "/user/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    login = await gateway.post("/user/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def paper_order() -> dict[str, Any]:
    return {
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": "0.01",
        "mode": "paper",
        "client_order_id": f"ops-{uuid.uuid4().hex[:12]}",
    }
