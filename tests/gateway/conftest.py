from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from gateway.main import create_app
from gateway.settings import GatewaySettings
from tests.gateway.upstream_app import create_upstream
from tests.servers import UvicornThread
from tradebot.stack import HTTP_PROTOCOLS

DEAD = "http://127.0.0.1:1"


def gateway_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "market_service_urls": DEAD,
        "user_service_urls": DEAD,
        "trading_service_urls": DEAD,
        "analysis_service_urls": DEAD,
        "notification_service_urls": DEAD,
        "breaker_failure_threshold": 3,
        "breaker_reset_timeout_seconds": 0.5,
        "upstream_connect_timeout_seconds": 1.0,
        "upstream_read_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


GatewayFactory = Callable[..., AbstractAsyncContextManager[UvicornThread]]


@pytest.fixture
def gateway() -> GatewayFactory:
    """`async with gateway(**settings) as server`: a real gateway on a free port."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[UvicornThread]:
        app = create_app(gateway_settings(**overrides))
        # On the HTTP protocol `tradebot serve gateway` uses (lean cycle for proxied routes).
        async with UvicornThread(app, http=HTTP_PROTOCOLS["gateway"]) as server:
            yield server

    return run


@pytest.fixture
async def upstream() -> AsyncIterator[UvicornThread]:
    async with UvicornThread(create_upstream("a")) as server:
        yield server


def all_upstreams(url: str) -> dict[str, str]:
    return {
        f"{name}_service_urls": url
        for name in ("market", "user", "trading", "analysis", "notification")
    }
