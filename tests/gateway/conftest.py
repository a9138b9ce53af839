"""Fixtures of the gateway tests: a real gateway on a free port, and one upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.main import create_app
from tests.gateway.stack import GatewayFactory, gateway_settings
from tests.gateway.upstream_app import create_upstream
from tests.servers import UvicornThread
from tradebot.stack import HTTP_PROTOCOLS


@pytest.fixture
def gateway() -> GatewayFactory:
    """`async with gateway(**settings) as server`: a real gateway on a free port."""

    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[UvicornThread]:
        app = create_app(gateway_settings(**overrides))
        # On the HTTP protocol `tradebot serve gateway` uses (lean cycle for proxied routes)
        # and, as it, without uvicorn's proxy headers (TRUSTED_PROXIES is the gateway's).
        async with UvicornThread(
            app, http=HTTP_PROTOCOLS["gateway"], proxy_headers=False
        ) as server:
            yield server

    return run


@pytest.fixture
async def upstream() -> AsyncIterator[UvicornThread]:
    async with UvicornThread(create_upstream("a")) as server:
        yield server
