"""`GET /market/ohlcv`: recent candles, ranges from history, gap filling, pagination."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from market_service.exchanges.sim import SimExchange
from tests.market_service.exchange_calls import count_calls

HOUR = 3_600_000
SINCE = 1_735_689_600_000  # 2025-01-01T00:00:00Z


async def test_recent_candles_have_the_ccxt_shape(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/market/ohlcv", params={"symbol": "BTC/USDT", "timeframe": "1m", "limit": 5}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["exchange"], body["symbol"], body["timeframe"]) == ("sim", "BTC/USDT", "1m")
    candles = body["candles"]
    assert len(candles) == 5
    assert all(type(c[0]) is int for c in candles)  # epoch ms, as every other route sends
    assert [c[0] - candles[0][0] for c in candles] == [i * 60_000 for i in range(5)]
    for _ts, o, h, lo, c, v in candles:
        assert lo <= min(o, c) <= max(o, c) <= h
        assert v > 0


async def test_a_range_matches_the_sim_history_a_backtest_reads(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/market/ohlcv",
        params={
            "symbol": "ETH/USDT",
            "timeframe": "1h",
            "limit": 24,
            "since": "2025-01-01T00:00:00Z",
        },
    )
    candles = response.json()["candles"]
    direct = SimExchange(seed=42).ohlcv("ETH/USDT", "1h", SINCE, 24)
    assert candles == direct
    assert candles[0][0] == SINCE


async def test_range_is_served_from_postgresql_after_it_was_fetched_once(
    market_app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    params: dict[str, str | int] = {
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "limit": 48,
        "since": str(SINCE),
    }
    first = await client.get("/market/ohlcv", params=params)
    async with engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT count(*) FROM ohlcv_data WHERE exchange='sim' AND timeframe='1h'")
        )
    assert stored == 48
    calls = count_calls(market_app)
    second = await client.get("/market/ohlcv", params=params)
    assert calls["fetch_ohlcv"] == 0
    assert second.json()["candles"] == first.json()["candles"]


async def test_numeric_precision_is_kept_in_the_history(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    params: dict[str, str | int] = {
        "symbol": "XRP/USDT",
        "timeframe": "1d",
        "limit": 3,
        "since": str(SINCE),
    }
    candles = (await client.get("/market/ohlcv", params=params)).json()["candles"]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT open, volume FROM ohlcv_data WHERE symbol='XRP/USDT' ORDER BY timestamp"
                )
            )
        ).first()
    assert row is not None
    assert str(row.open).rstrip("0") == repr(candles[0][1]).rstrip("0")
    assert float(row.volume) == candles[0][5]


async def test_a_gap_in_the_history_is_filled_from_the_exchange(
    market_app: FastAPI, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    params: dict[str, str | int] = {
        "symbol": "SOL/USDT",
        "timeframe": "1h",
        "limit": 10,
        "since": str(SINCE),
    }
    full = (await client.get("/market/ohlcv", params=params)).json()["candles"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "DELETE FROM ohlcv_data WHERE symbol='SOL/USDT' AND timestamp >= to_timestamp(:a) "
                "AND timestamp < to_timestamp(:b)"
            ),
            {"a": (SINCE + 3 * HOUR) / 1000, "b": (SINCE + 6 * HOUR) / 1000},
        )
    exchange = market_app.state.exchanges.get("sim")
    asked: list[tuple[int | None, int]] = []
    original = exchange.fetch_ohlcv

    async def spy(symbol, timeframe, since, limit):
        asked.append((since, limit))
        return await original(symbol, timeframe, since, limit)

    exchange.fetch_ohlcv = spy
    again = (await client.get("/market/ohlcv", params=params)).json()["candles"]
    assert again == full
    assert asked == [(SINCE + 3 * HOUR, 3)]  # only the gap
    async with engine.connect() as conn:
        assert (
            await conn.scalar(text("SELECT count(*) FROM ohlcv_data WHERE symbol='SOL/USDT'")) == 10
        )


async def test_long_ranges_are_paginated_past_the_per_call_limit(
    market_app: FastAPI, client: httpx.AsyncClient
) -> None:
    calls = count_calls(market_app)
    response = await client.get(
        "/market/ohlcv",
        params={"symbol": "BNB/USDT", "timeframe": "1m", "limit": 2500, "since": str(SINCE)},
    )
    candles = response.json()["candles"]
    assert len(candles) == 2500
    assert candles[-1][0] == SINCE + 2499 * 60_000
    assert calls["fetch_ohlcv"] == 3  # 1000 + 1000 + 500


async def test_coarse_candles_aggregate_the_one_minute_path(client: httpx.AsyncClient) -> None:
    base = {"symbol": "BTC/USDT", "since": str(SINCE)}
    five = (
        await client.get("/market/ohlcv", params={**base, "timeframe": "5m", "limit": 1})
    ).json()
    ones = (
        await client.get("/market/ohlcv", params={**base, "timeframe": "1m", "limit": 5})
    ).json()
    (_ts, o, h, lo, c, v) = five["candles"][0]
    rows = ones["candles"]
    assert (o, c) == (rows[0][1], rows[-1][4])
    assert h == max(r[2] for r in rows)
    assert lo == min(r[3] for r in rows)
    assert abs(v - sum(r[5] for r in rows)) < 1e-6


async def test_an_unsupported_timeframe_is_a_400_naming_the_valid_ones(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/market/ohlcv", params={"symbol": "BTC/USDT", "timeframe": "7m"})
    assert response.status_code == 400
    assert "1m" in response.json()["detail"]


async def test_a_bad_since_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/market/ohlcv", params={"symbol": "BTC/USDT", "since": "yesterday"}
    )
    assert response.status_code == 422


async def test_a_since_outside_2000_to_2099_is_a_422_not_a_database_error(
    client: httpx.AsyncClient,
) -> None:
    for since in ("253402300800000", "99999999999999999999", "1969-12-31", "3000-01-01", "x"):
        response = await client.get(
            "/market/ohlcv", params={"symbol": "BTC/USDT", "timeframe": "1h", "since": since}
        )
        assert response.status_code == 422, (since, response.text)
        assert response.json()["errors"][0]["loc"] == ["query", "since"]


async def test_a_parameter_the_route_does_not_take_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/orderbook", params={"symbol": "BTC/USDT", "limit": 3})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "limit"]
    assert "depth" in error["msg"]
    depth = await client.get("/market/orderbook", params={"symbol": "BTC/USDT", "depth": 3})
    assert depth.status_code == 200
    assert len(depth.json()["bids"]) == 3
