"""The real ccxt classes (binance, gate, mexc) against a local stub of their REST APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from market_service.main import create_app
from market_service.settings import MarketSettings
from tests.market_service.exchange_stub import CANDLE_START_MS, ExchangeStub, candle
from tests.servers import app_client

VENUES = ["binance", "gate", "mexc"]


@pytest.fixture
async def stub(request: pytest.FixtureRequest) -> AsyncIterator[ExchangeStub]:
    server = await ExchangeStub(getattr(request, "param", "binance")).start()
    yield server
    await server.stop()


def venue_app(venue: str, stub: ExchangeStub, **overrides: Any):
    settings = MarketSettings(
        market_exchanges=venue,
        exchange_base_urls={venue: stub.url},
        exchange_rate_limit=False,
        exchange_retry_wait_min=0.01,
        exchange_retry_wait_max=0.02,
        **overrides,
    )
    return create_app(settings)


@pytest.mark.parametrize("stub", VENUES, indirect=True)
async def test_ccxt_parses_tickers_candles_and_books(stub: ExchangeStub) -> None:
    venue = stub.venue
    async with app_client(venue_app(venue, stub)) as client:
        ticker = (await client.get("/market/ticker", params={"symbol": "BTC/USDT"})).json()
        assert ticker["exchange"] == venue
        assert (ticker["price"], ticker["bid"], ticker["ask"]) == (65000.5, 64999.9, 65001.1)
        assert ticker["volume"] == 1234.5
        assert ticker["change"] == 2.5

        ohlcv = await client.get(
            "/market/ohlcv",
            params={"symbol": "BTC/USDT", "timeframe": "1m", "limit": 3, "since": CANDLE_START_MS},
        )
        assert ohlcv.status_code == 200, ohlcv.text
        assert ohlcv.json()["candles"] == [list(map(float, candle(i))) for i in range(3)]

        book = (
            await client.get("/market/orderbook", params={"symbol": "BTC/USDT", "depth": 2})
        ).json()
        assert book["bids"] == [[64999.9, 1.5], [64999.0, 2.0]]
        assert book["asks"] == [[65001.1, 0.5], [65002.0, 1.0]]

        markets = (await client.get("/market/markets")).json()["markets"]
        assert set(markets) == {"BTC/USDT", "ETH/USDT"}
        assert markets["BTC/USDT"]["limits"]["amount"]["min"] == 0.00001


@pytest.mark.parametrize("stub", ["binance"], indirect=True)
async def test_ohlcv_ranges_page_through_the_exchange_limit(stub: ExchangeStub) -> None:
    async with app_client(venue_app("binance", stub)) as client:
        response = await client.get(
            "/market/ohlcv",
            params={
                "symbol": "ETH/USDT",
                "timeframe": "1m",
                "limit": 1500,
                "since": CANDLE_START_MS,
            },
        )
        candles = response.json()["candles"]
        assert len(candles) == 1500
        assert candles[-1][0] == CANDLE_START_MS + 1499 * 60_000
        assert stub.hits["/api/v3/klines"] == 2


@pytest.mark.parametrize("stub", ["gate"], indirect=True)
async def test_unknown_symbol_on_a_ccxt_exchange_is_a_404_problem(stub: ExchangeStub) -> None:
    async with app_client(venue_app("gate", stub)) as client:
        response = await client.get("/market/ticker", params={"symbol": "DOGE/USDT"})
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "DOGE/USDT" in response.json()["detail"]
        assert stub.hits["/api/v4/spot/tickers"] == 0


@pytest.mark.parametrize("stub", ["binance"], indirect=True)
async def test_unsupported_timeframe_on_a_ccxt_exchange_is_a_400(stub: ExchangeStub) -> None:
    async with app_client(venue_app("binance", stub)) as client:
        response = await client.get(
            "/market/ohlcv", params={"symbol": "BTC/USDT", "timeframe": "7m"}
        )
        assert response.status_code == 400
        assert "'7m'" in response.json()["detail"]


@pytest.mark.parametrize("stub", ["binance"], indirect=True)
async def test_rate_limit_is_retried_then_trips_the_breaker(stub: ExchangeStub) -> None:
    app = venue_app("binance", stub, exchange_retry_attempts=3, exchange_breaker_threshold=2)
    async with app_client(app) as client:
        await client.get("/market/markets")  # markets load fine
        stub.fail_with = 429
        for _ in range(2):
            response = await client.get("/market/ticker", params={"symbol": "BTC/USDT"})
            assert response.status_code == 503
            assert "Retry-After" in response.headers
        assert stub.hits["/api/v3/ticker/24hr"] == 6  # 3 attempts per request

        response = await client.get("/market/ticker", params={"symbol": "ETH/USDT"})
        assert response.status_code == 503
        assert "circuit open" in response.json()["detail"]
        # Refused at once: the open breaker made no call, so there was no attempt to retry.
        assert stub.hits["/api/v3/ticker/24hr"] == 6

        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["services"]["exchange"] == "down"
        exchanges = (await client.get("/market/exchanges")).json()["exchanges"]
        assert exchanges[0]["status"] == "down"


@pytest.mark.parametrize("stub", ["mexc"], indirect=True)
async def test_a_timeout_is_retried_then_answers_503(stub: ExchangeStub) -> None:
    app = venue_app("mexc", stub, exchange_timeout_ms=200, exchange_retry_attempts=2)
    async with app_client(app) as client:
        await client.get("/market/markets")
        stub.delay = 1.0
        response = await client.get("/market/orderbook", params={"symbol": "BTC/USDT"})
        assert response.status_code == 503
        assert stub.hits["/api/v3/depth"] == 2
        stub.delay = 0.0
        recovered = await client.get("/market/orderbook", params={"symbol": "BTC/USDT"})
        assert recovered.status_code == 200
