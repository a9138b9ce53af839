"""`/market/ticker`, `/market/tickers`, `/market/orderbook`, `/market/trades` on the sim."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from tests.market_service.exchange_calls import count_calls


async def test_ticker_has_the_documented_shape_with_numbers(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/ticker", params={"symbol": "BTC/USDT"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "exchange",
        "symbol",
        "price",
        "bid",
        "ask",
        "volume",
        "change",
        "timestamp",
    }
    assert body["exchange"] == "sim"
    assert body["symbol"] == "BTC/USDT"
    assert isinstance(body["price"], float)
    assert body["bid"] < body["ask"]
    assert body["bid"] <= body["price"] <= body["ask"]
    assert body["timestamp"].endswith("Z")


async def test_cache_hit_makes_no_exchange_call(
    market_app: FastAPI, client: httpx.AsyncClient
) -> None:
    calls = count_calls(market_app)
    first = await client.get("/market/ticker", params={"symbol": "ETH/USDT"})
    second = await client.get("/market/ticker", params={"symbol": "ETH/USDT"})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert calls["fetch_ticker"] == 1


async def test_fifty_concurrent_misses_make_one_exchange_call(
    market_app: FastAPI, client: httpx.AsyncClient
) -> None:
    calls = count_calls(market_app)
    exchange = market_app.state.exchanges.get("sim")
    original = exchange.fetch_ticker
    flights = market_app.state.flights
    do = flights.do
    misses = 0
    all_missed = asyncio.Event()

    async def counted_do(key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        nonlocal misses
        misses += 1
        if misses == 50:
            all_missed.set()
        return await do(key, call)

    async def held(symbol: str) -> Any:  # the flight stays open until every request missed
        await all_missed.wait()
        return await original(symbol)

    flights.do = counted_do
    exchange.fetch_ticker = held
    responses = await asyncio.gather(
        *(client.get("/market/ticker", params={"symbol": "SOL/USDT"}) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["price"] for r in responses}) == 1
    assert calls["fetch_ticker"] == 1


async def test_tickers_returns_many_symbols_in_one_call(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/tickers", params={"symbols": "BTC/USDT,eth/usdt"})
    assert response.status_code == 200
    assert [t["symbol"] for t in response.json()["tickers"]] == ["BTC/USDT", "ETH/USDT"]


async def test_unknown_symbol_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/ticker", params={"symbol": "NOPE/USDT"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "NOPE/USDT" in response.json()["detail"]


async def test_malformed_symbol_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/ticker", params={"symbol": "BTCUSDT"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "symbol"]


async def test_unknown_exchange_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/ticker", params={"symbol": "BTC/USDT", "exchange": "ftx"})
    assert response.status_code == 404
    assert "ftx" in response.json()["detail"]


async def test_order_book_is_sorted_best_first_and_cut_to_depth(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/orderbook", params={"symbol": "BTC/USDT", "depth": 5})
    assert response.status_code == 200
    book = response.json()
    assert len(book["bids"]) == len(book["asks"]) == 5
    bids = [p for p, _ in book["bids"]]
    asks = [p for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    assert all(amount > 0 for _, amount in book["bids"] + book["asks"])


async def test_order_book_is_cached_for_every_depth(
    market_app: FastAPI, client: httpx.AsyncClient
) -> None:
    calls = count_calls(market_app)
    deep = (
        await client.get("/market/orderbook", params={"symbol": "ETH/USDT", "depth": 50})
    ).json()
    shallow = (
        await client.get("/market/orderbook", params={"symbol": "ETH/USDT", "depth": 3})
    ).json()
    assert shallow["bids"] == deep["bids"][:3]
    assert calls["fetch_order_book"] == 1


async def test_trades_are_recent_and_oldest_first(client: httpx.AsyncClient) -> None:
    response = await client.get("/market/trades", params={"symbol": "ETH/USDT", "limit": 5})
    trades = response.json()["trades"]
    assert len(trades) == 5
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    assert {t["side"] for t in trades} <= {"buy", "sell"}
