"""`GET /market/ohlcv/bulk`: a long range as one Arrow stream; closed weeks filled once
(from the rows already stored and the exchange), sealed and served from PostgreSQL the
next time; the week in progress stored as rows."""

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
from market_service.ohlcv.service import bucket_floor
from market_service.settings import MarketSettings
from shared.candle_arrow import CandleStreamError, read_candles
from tests.market_service.exchange_calls import count_calls
from tests.servers import app_client
from tradebot.backtest import sim_candles

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SINCE = 1_735_689_600_000  # 2025-01-01T00:00:00Z, a Wednesday
MONDAY = SINCE - 2 * DAY  # the week holding it starts on 2024-12-30
WEEK = 7 * DAY


@pytest.fixture
def bulk_app(service_env: dict[str, str]) -> FastAPI:
    # Windows of one week (the least), so a few weeks already take several windows.
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
    """Rows in ``ohlcv_data``."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM ohlcv_data WHERE symbol = :s AND timeframe = :t"),
            {"s": symbol, "t": timeframe},
        )
    return int(count or 0)


async def sealed(engine: AsyncEngine, symbol: str, timeframe: str) -> list[tuple[int, int]]:
    """The sealed weeks: (Monday in epoch ms, candles)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT (extract(epoch FROM week) * 1000)::bigint, candles FROM ohlcv_blocks "
                "WHERE symbol = :s AND timeframe = :t ORDER BY week"
            ),
            {"s": symbol, "t": timeframe},
        )
    return [(int(week), int(count)) for week, count in rows]


async def test_closed_weeks_are_filled_once_sealed_and_then_read_back(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    until = SINCE + 15 * DAY + 77 * MINUTE  # both ends inside a week
    asked = spy_rows(bulk_app)
    first = await bulk(bulk_client, symbol="SOL/USDT", timeframe="1m", since=SINCE, until=until)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/vnd.apache.arrow.stream"
    candles = read_candles(first.content)
    assert candles.to_rows() == sim_candles("SOL/USDT", "1m", SINCE, until).to_rows()
    # Three windows of one whole week each (two at a time), each built once and sealed whole.
    assert sorted(asked) == [(MONDAY + k * WEEK, MONDAY + (k + 1) * WEEK) for k in range(3)]
    assert await sealed(engine, "SOL/USDT", "1m") == [(MONDAY + k * WEEK, 10_080) for k in range(3)]
    assert await stored(engine, "SOL/USDT", "1m") == 0  # no rows: the weeks hold them

    calls = count_calls(bulk_app)
    again = await bulk(bulk_client, symbol="SOL/USDT", timeframe="1m", since=SINCE, until=until)
    assert len(asked) == 3  # no range built again
    assert sum(calls.values()) == 0  # and no other exchange read
    assert read_candles(again.content).to_rows() == candles.to_rows()
    # Another range of the same weeks: cut from them, nothing fetched.
    inner = await bulk(
        bulk_client, symbol="SOL/USDT", timeframe="1m", since=MONDAY + 3, until=MONDAY + 9 * DAY
    )
    assert len(asked) == 3
    rows = sim_candles("SOL/USDT", "1m", MONDAY + 3, MONDAY + 9 * DAY).to_rows()
    assert read_candles(inner.content).to_rows() == rows


@pytest.mark.parametrize("timeframe", ["3d", "1w", "4h"])
async def test_timeframes_not_aligned_on_weeks_are_sealed_and_read_alike(
    bulk_client: httpx.AsyncClient, engine: AsyncEngine, timeframe: str
) -> None:
    # 3-day candles open on epoch days (a Thursday), weekly ones on Mondays. The range ends
    # on a Sunday where a 3-day candle opens: the last week sealed holds it all the same.
    since, until = (bucket_floor(t, timeframe) for t in (SINCE - 60 * DAY, MONDAY + 13 * DAY))
    params = {"symbol": "ETH/USDT", "timeframe": timeframe, "since": since, "until": until}
    expected = sim_candles("ETH/USDT", timeframe, since, until).to_rows()
    for _ in range(2):  # filled, then read from the sealed weeks
        answer = await bulk(bulk_client, **params)
        assert read_candles(answer.content).to_rows() == expected
    # The sealed weeks hold every bucket opening in them, the last week's last one too.
    later = bucket_floor(until + 30 * DAY, timeframe)
    answer = await bulk(bulk_client, **{**params, "until": later})
    assert read_candles(answer.content).to_rows() == (
        sim_candles("ETH/USDT", timeframe, since, later).to_rows()
    )


async def test_requests_filling_the_same_weeks_at_once_both_get_them(
    bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    params = {"symbol": "ETH/BTC", "timeframe": "15m", "since": SINCE, "until": SINCE + 9 * DAY}
    answers = await asyncio.gather(bulk(bulk_client, **params), bulk(bulk_client, **params))
    expected = sim_candles("ETH/BTC", "15m", SINCE, SINCE + 9 * DAY).to_rows()
    assert [read_candles(a.content).to_rows() for a in answers] == [expected, expected]
    assert len(await sealed(engine, "ETH/BTC", "15m")) == 2


async def test_a_week_uses_the_rows_already_stored_and_fetches_only_the_rest(
    bulk_app: FastAPI,
    client: httpx.AsyncClient,
    bulk_client: httpx.AsyncClient,
    engine: AsyncEngine,
) -> None:
    # The paged route stores two days (its own upsert); bulk reads them and fills the rest.
    paged = await client.get(
        "/market/ohlcv",
        params={"symbol": "XRP/USDT", "timeframe": "1h", "since": SINCE, "limit": 48},
    )
    rows = paged.json()["candles"]
    asked = spy_rows(bulk_app)
    response = await bulk(
        bulk_client,
        symbol="XRP/USDT",
        timeframe="1h",
        since=SINCE - 24 * HOUR,
        until=SINCE + 48 * HOUR,
    )
    candles = read_candles(response.content).to_rows()
    assert len(candles) == 72
    assert candles[24:] == rows  # the same values as the paged route
    assert asked == [(MONDAY, SINCE), (SINCE + 48 * HOUR, MONDAY + WEEK)]
    assert await sealed(engine, "XRP/USDT", "1h") == [(MONDAY, 168)]


async def test_the_week_in_progress_is_stored_as_rows_and_not_sealed(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    now = bulk_app.state.exchanges.get("sim").now_ms()
    this_week = (now - 4 * DAY) // WEEK * WEEK + 4 * DAY
    since = this_week - 3 * DAY  # the end of last week, and this one up to now
    params = {"symbol": "BNB/USDT", "timeframe": "1h", "since": since}
    first = read_candles((await bulk(bulk_client, **params)).content)
    closed_now = (now // HOUR) * HOUR
    assert first.to_rows() == sim_candles("BNB/USDT", "1h", since, closed_now).to_rows()
    assert await sealed(engine, "BNB/USDT", "1h") == [(this_week - WEEK, 168)]
    assert await stored(engine, "BNB/USDT", "1h") == (closed_now - this_week) // HOUR
    asked = spy_rows(bulk_app)
    again = read_candles((await bulk(bulk_client, **params)).content)
    assert len(again) >= len(first)
    # At most the hour that closed in between is fetched again.
    assert all(end - start <= HOUR for start, end in asked)


async def test_a_week_the_exchange_has_nothing_for_is_sealed_empty(
    bulk_app: FastAPI, bulk_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # The sim's history starts on 2017-01-01 (a Sunday): the weeks before are empty.
    first_candle = 1_483_228_800_000
    params = {"symbol": "BTC/USDT", "timeframe": "1d", "since": first_candle - 20 * DAY}
    params["until"] = first_candle + 3 * DAY
    response = await bulk(bulk_client, **params)
    assert len(read_candles(response.content)) == 3
    weeks = await sealed(engine, "BTC/USDT", "1d")
    assert [count for _, count in weeks] == [0, 0, 1, 7]
    asked = spy_rows(bulk_app)
    await bulk(bulk_client, **params)
    assert asked == []


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
    assert calls["fetch_ohlcv"] == 11  # the whole week, 10 080 candles, 1 000 a page


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
        assert await conn.scalar(text("SELECT count(*) FROM ohlcv_blocks")) == 0


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
