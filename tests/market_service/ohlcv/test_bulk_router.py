"""`GET /market/ohlcv/bulk`: a long range as one Arrow stream, missing candles built,
stored with COPY and served from PostgreSQL the next time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from market_service.main import create_app
from market_service.settings import MarketSettings
from shared.candle_arrow import CandleStreamError, read_candles
from tests.market_service.exchange_calls import count_calls
from tests.servers import app_client
from tradebot.backtest import sim_candles

MINUTE, HOUR = 60_000, 3_600_000
SINCE = 1_735_689_600_000  # 2025-01-01T00:00:00Z


@pytest.fixture
def bulk_app(service_env: dict[str, str]) -> FastAPI:
    # Small windows, so a few thousand candles already take several fills and batches.
    return create_app(MarketSettings(ohlcv_bulk_window=1000))


@pytest.fixture
async def bulk_client(bulk_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(bulk_app) as client:
        yield client


def spy_rows(app: FastAPI) -> list[tuple[int, int]]:
    """The ranges the sim is asked to build, in order."""
    exchange = app.state.exchanges.get("sim")
    asked: list[tuple[int, int]] = []
    original = exchange.closed_ohlcv_rows

    def spy(symbol: str, timeframe: str, start_ms: int, end_ms: int) -> Any:
        asked.append((start_ms, end_ms))
        return original(symbol, timeframe, start_ms, end_ms)

    exchange.closed_ohlcv_rows = spy
    return asked


async def bulk(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/market/ohlcv/bulk", params=params)


async def stored(engine: AsyncEngine, symbol: str, timeframe: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM ohlcv_data WHERE symbol = :s AND timeframe = :t"),
            {"s": symbol, "t": timeframe},
        )
    return int(count or 0)


async def test_a_range_not_stored_yet_is_built_stored_and_then_read_back(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    until = SINCE + 3500 * MINUTE
    asked = spy_rows(bulk_app)
    first = await bulk(bulk_client, symbol="SOL/USDT", timeframe="1m", since=SINCE, until=until)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/vnd.apache.arrow.stream"
    candles = read_candles(first.content)
    assert candles.to_rows() == sim_candles("SOL/USDT", "1m", SINCE, until).to_rows()
    assert len(asked) == 4  # four windows of at most 1000 candles, each built once
    assert await stored(engine, "SOL/USDT", "1m") == 3500

    calls = count_calls(bulk_app)
    again = await bulk(bulk_client, symbol="SOL/USDT", timeframe="1m", since=SINCE, until=until)
    assert len(asked) == 4  # no range built again
    assert sum(calls.values()) == 0  # and no other exchange read
    assert read_candles(again.content).to_rows() == candles.to_rows()


async def test_bulk_values_equal_the_paged_route_on_the_same_history(
    client: httpx.AsyncClient, bulk_client: httpx.AsyncClient
) -> None:
    # The paged route stores the first day (its own upsert); bulk reads it and fills the rest.
    paged = await client.get(
        "/market/ohlcv",
        params={"symbol": "XRP/USDT", "timeframe": "1h", "since": SINCE, "limit": 48},
    )
    rows = paged.json()["candles"]
    response = await bulk(
        bulk_client,
        symbol="XRP/USDT",
        timeframe="1h",
        since=SINCE - 24 * HOUR,
        until=SINCE + 48 * HOUR,
    )
    candles = read_candles(response.content).to_rows()
    assert len(candles) == 72
    assert candles[24:] == rows


async def test_only_the_missing_runs_are_fetched_into_a_stored_range(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    params = {
        "symbol": "ETH/USDT",
        "timeframe": "5m",
        "since": SINCE,
        "until": SINCE + 600 * 300_000,
    }
    full = read_candles((await bulk(bulk_client, **params)).content).to_rows()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM ohlcv_data WHERE symbol='ETH/USDT' AND ("
                "(timestamp >= to_timestamp(:a) AND timestamp < to_timestamp(:b)) "
                "OR timestamp >= to_timestamp(:c))"
            ),
            {
                "a": (SINCE + 10 * 300_000) / 1000,
                "b": (SINCE + 13 * 300_000) / 1000,
                "c": (SINCE + 590 * 300_000) / 1000,
            },
        )
    asked = spy_rows(bulk_app)
    again = read_candles((await bulk(bulk_client, **params)).content).to_rows()
    assert again == full
    assert asked == [
        (SINCE + 10 * 300_000, SINCE + 13 * 300_000),
        (SINCE + 590 * 300_000, SINCE + 600 * 300_000),
    ]
    assert await stored(engine, "ETH/USDT", "5m") == 600


async def test_an_exchange_without_whole_ranges_is_paged(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient
) -> None:
    exchange = bulk_app.state.exchanges.get("sim")
    exchange.closed_ohlcv_rows = None  # as a ccxt exchange: fetch_ohlcv, page by page
    calls = count_calls(bulk_app)
    until = SINCE + 2500 * MINUTE
    response = await bulk(bulk_client, symbol="BNB/USDT", timeframe="1m", since=SINCE, until=until)
    assert (
        read_candles(response.content).to_rows()
        == sim_candles("BNB/USDT", "1m", SINCE, until).to_rows()
    )
    assert calls["fetch_ohlcv"] == 3  # windows of 1000, 1000 and 500 candles


async def test_only_closed_candles_are_served(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient
) -> None:
    now = bulk_app.state.exchanges.get("sim").now_ms()
    response = await bulk(
        bulk_client, symbol="BTC/USDT", timeframe="1h", since=now - 30 * HOUR, until=now + 5 * HOUR
    )
    candles = read_candles(response.content)
    assert int(candles.timestamp[-1]) + HOUR <= now  # the forming hour is left out
    assert len(candles) in (29, 30)
    assert np.all(np.diff(candles.timestamp) == HOUR)


async def test_an_empty_range_is_an_empty_stream(bulk_client: httpx.AsyncClient) -> None:
    # No daily candle opens in (00:00, 00:01]: nothing to build, store or send.
    response = await bulk(
        bulk_client, symbol="BTC/USDT", timeframe="1d", since=SINCE + 1, until=SINCE + 60_000
    )
    assert response.status_code == 200
    assert len(read_candles(response.content)) == 0


async def test_a_stream_cut_short_is_refused(bulk_client: httpx.AsyncClient) -> None:
    response = await bulk(
        bulk_client, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=SINCE + 10 * HOUR
    )
    with pytest.raises(CandleStreamError):
        read_candles(response.content[:-8])


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"timeframe": "7m", "since": SINCE}, 400, "1m"),
        ({"symbol": "NOPE/USDT", "since": SINCE}, 404, "NOPE/USDT"),
        ({"since": "yesterday"}, 422, "since"),
        ({"since": SINCE, "until": SINCE}, 422, "until must be after since"),
        ({"timeframe": "1m", "since": 0, "until": SINCE}, 422, "at most 2000000"),
        ({}, 422, "since"),
    ],
)
async def test_a_bad_request_is_refused_before_anything_is_fetched(
    bulk_app: FastAPI,
    bulk_client: httpx.AsyncClient,
    engine: AsyncEngine,
    params: dict[str, Any],
    status: int,
    words: str,
) -> None:
    asked = spy_rows(bulk_app)
    response = await bulk(bulk_client, **{"symbol": "BTC/USDT", **params})
    assert response.status_code == status, response.text
    assert words in response.text
    assert asked == []
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM ohlcv_data")) == 0


async def test_tickers_are_answered_while_a_range_is_being_built(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient
) -> None:
    exchange = bulk_app.state.exchanges.get("sim")
    original = exchange.closed_ohlcv_rows
    entered, release = threading.Event(), threading.Event()
    released_in_time: list[bool] = []

    def held(*args: Any) -> Any:
        entered.set()
        # Bounded: built on the event loop, this would block the request that releases it.
        released_in_time.append(release.wait(timeout=20))
        return original(*args)

    exchange.closed_ohlcv_rows = held
    job = asyncio.create_task(
        bulk(bulk_client, symbol="BTC/USDT", timeframe="1h", since=SINCE, until=SINCE + 5 * HOUR)
    )
    assert await asyncio.to_thread(entered.wait, 20)
    try:
        ticker = await bulk_client.get("/market/ticker", params={"symbol": "ETH/USDT"})
        assert ticker.status_code == 200
    finally:
        release.set()
    assert len(read_candles((await job).content)) == 5
    assert released_in_time == [True]
