"""Fixtures of the analysis service tests: the app in-process (ASGI, lifespan running the
backtest worker and the trade consumer) and a fake market service on ``httpx.MockTransport``
serving real-looking candles through ``GET /market/ohlcv``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from analysis_service.main import create_app
from analysis_service.settings import AnalysisSettings
from shared.candles import Candles
from tests.factories import TestUser, create_user
from tests.servers import app_client
from tests.shared.sample_candles import random_candles

HOUR = 3_600_000
MARKET_CANDLES = random_candles(
    3000, seed=21, frame_ms=HOUR, start_ms=1_700_000_000_000 // HOUR * HOUR
)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


class FakeMarket:
    """``GET /market/ohlcv`` over fixed 1h candles of BTC/USDT (the last one 'forming')."""

    def __init__(self, candles: Candles) -> None:
        self.rows = candles.to_rows()
        self.calls: list[httpx.Request] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path != "/market/ohlcv":
            return httpx.Response(404, json={"detail": "Not Found"})
        params = request.url.params
        if params["symbol"] != "BTC/USDT":
            return httpx.Response(
                404, json={"status": 404, "detail": f"Unknown symbol {params['symbol']!r}."}
            )
        if params.get("timeframe", "1h") != "1h":
            return httpx.Response(422, json={"detail": "Timeframe not offered"})
        limit = int(params.get("limit", 100))
        if "since" in params:
            since = int(params["since"])
            rows = [r for r in self.rows if r[0] >= since][:limit]
        else:
            rows = self.rows[-limit:]
        return httpx.Response(
            200,
            json={"exchange": "sim", "symbol": "BTC/USDT", "timeframe": "1h", "candles": rows},
        )


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket(MARKET_CANDLES)


@pytest.fixture
def settings(service_env: dict[str, str]) -> AnalysisSettings:
    return AnalysisSettings(
        market_service_urls="http://market.test",
        market_page_limit=500,
        backtest_claim_idle_ms=1000,
        backtest_heartbeat_s=0.2,
    )


@pytest.fixture
async def client(
    settings: AnalysisSettings, market: FakeMarket
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, market_transport=httpx.MockTransport(market))
    async with app_client(app) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def user(session, redis) -> TestUser:
    return await create_user(session, redis)
