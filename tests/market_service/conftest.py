"""Fixtures of the market service tests: the app on the sim exchange, call counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from market_service.main import create_app
from market_service.settings import MarketSettings
from tests.servers import app_client


def market_settings(**overrides: Any) -> MarketSettings:
    return MarketSettings(**overrides)


@pytest.fixture
def market_app() -> FastAPI:
    return create_app(market_settings())


@pytest.fixture
async def client(market_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(market_app) as client:
        yield client


def count_calls(app: FastAPI, exchange_id: str = "sim") -> Counter[str]:
    """Count the exchange reads of a running app, method by method."""
    exchange = app.state.exchanges.get(exchange_id)
    calls: Counter[str] = Counter()
    for name in ("fetch_ticker", "fetch_ohlcv", "fetch_order_book", "fetch_trades"):
        original: Callable[..., Awaitable[Any]] = getattr(exchange, name)

        def wrap(fn: Callable[..., Awaitable[Any]], label: str) -> Callable[..., Awaitable[Any]]:
            async def counted(*args: Any, **kwargs: Any) -> Any:
                calls[label] += 1
                return await fn(*args, **kwargs)

            return counted

        setattr(exchange, name, wrap(original, name))
    return calls
