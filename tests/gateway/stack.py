"""The gateway under test: its settings (every upstream dead unless a test names one) and
the type of the ``gateway`` fixture that runs it on real uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from gateway.settings import GatewaySettings
from tests.servers import UvicornThread

DEAD = "http://127.0.0.1:1"

GatewayFactory = Callable[..., AbstractAsyncContextManager[UvicornThread]]


def gateway_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "market_service_urls": DEAD,
        "user_service_urls": DEAD,
        "trading_service_urls": DEAD,
        "analysis_service_urls": DEAD,
        "notification_service_urls": DEAD,
        "breaker_failure_threshold": 3,
        # Long enough that an open breaker is still open when a busy machine gets to the
        # next assertion; tests that wait for it to close poll until it has.
        "breaker_reset_timeout_seconds": 3.0,
        "upstream_connect_timeout_seconds": 1.0,
        "upstream_read_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


def all_upstreams(url: str) -> dict[str, str]:
    """Settings that send every prefix to the one upstream at ``url``."""
    return {
        f"{name}_service_urls": url
        for name in ("market", "user", "trading", "analysis", "notification")
    }
