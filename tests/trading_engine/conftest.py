"""Fixtures of the trading engine's tests: stubs of the market and user
services on real uvicorn servers, and the engine app pointed at them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import TestUser, create_user
from tests.servers import UvicornThread, app_client
from tests.trading_engine.stubs import MarketStub, UserStub
from trading_engine.main import create_app
from trading_engine.settings import TradingSettings


@pytest.fixture(scope="session")
def market_stub_server() -> Iterator[tuple[MarketStub, str]]:
    stub = MarketStub()
    server = UvicornThread(stub.app).start()
    yield stub, server.url
    server.stop()


@pytest.fixture(scope="session")
def user_stub_server() -> Iterator[tuple[UserStub, str]]:
    stub = UserStub()
    server = UvicornThread(stub.app).start()
    yield stub, server.url
    server.stop()


@pytest.fixture
def market(market_stub_server: tuple[MarketStub, str]) -> MarketStub:
    stub, _ = market_stub_server
    stub.reset()
    stub.set_price("BTC/USDT", 100.0)
    stub.set_price("ETH/USDT", 10.0)
    return stub


@pytest.fixture
def users(user_stub_server: tuple[UserStub, str]) -> UserStub:
    stub, _ = user_stub_server
    stub.reset()
    return stub


@pytest.fixture(scope="session")
def candle_channel() -> str:
    """This run's candle fan-out channel: pub/sub is shared by every Redis database, so
    concurrent test runs would otherwise wake each other's bots."""
    return f"channel:trading:candles:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine_settings(
    market_stub_server: tuple[MarketStub, str],
    user_stub_server: tuple[UserStub, str],
    service_env: dict[str, str],
    candle_channel: str,
) -> Callable[..., TradingSettings]:
    def make(**overrides: Any) -> TradingSettings:
        values: dict[str, Any] = {
            "market_service_urls": market_stub_server[1],
            "user_service_urls": user_stub_server[1],
            "internal_api_token": UserStub.TOKEN,
            "bot_sync_interval_s": 0.2,
            "bot_lease_ms": 3000,
            "log_json": False,
            "candle_channel": candle_channel,
            # Tests change books and limits between requests: no caching of either.
            "order_book_ttl_s": 0,
            "account_cache_ttl_s": 0,
            **overrides,
        }
        return TradingSettings(**values)

    return make


@pytest.fixture
async def app(engine_settings: Callable[..., TradingSettings]) -> FastAPI:
    return create_app(engine_settings(run_bots=False))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as http:
        yield http


@pytest.fixture
def new_user(session: AsyncSession, redis: Redis, users: UserStub) -> Callable[..., Any]:
    async def make(
        permissions: tuple[str, ...] = ("trade:paper",), limits: dict[str, Any] | None = None
    ) -> TestUser:
        user = await create_user(session, redis, permissions=permissions)
        users.add(user.id, permissions=permissions, limits=limits)
        return user

    return make
