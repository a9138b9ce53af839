"""Fixtures of the market service tests: the app on the sim exchange, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from market_service.main import create_app
from market_service.settings import MarketSettings
from tests.servers import app_client


@pytest.fixture
def market_app() -> FastAPI:
    return create_app(MarketSettings())


@pytest.fixture
async def client(market_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(market_app) as client:
        yield client
