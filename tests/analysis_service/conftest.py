"""Fixtures of the analysis service tests: the app in-process (ASGI, lifespan running the
backtest worker and the trade consumer) in front of the fake market service
(tests/analysis_service/fake_market.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from analysis_service.main import create_app
from analysis_service.settings import AnalysisSettings
from tests.analysis_service.fake_market import MARKET_CANDLES, FakeMarket
from tests.factories import TestUser, create_user
from tests.servers import app_client


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
