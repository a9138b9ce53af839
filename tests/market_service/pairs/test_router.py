"""`/market/exchanges`, `/market/pairs`, `/market/markets` and `/health`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import httpx
from redis.asyncio import Redis

from market_service.main import SIM_ANCHOR_KEY, create_app
from market_service.settings import MarketSettings
from tests.servers import app_client
from tests.waiting import eventually


async def test_exchanges_lists_the_sim_as_default(client: httpx.AsyncClient) -> None:
    body = (await client.get("/market/exchanges")).json()
    assert body["exchanges"][0]["id"] == "sim"
    assert body["exchanges"][0]["default"] is True
    assert "1m" in body["exchanges"][0]["timeframes"]
    assert "1d" in body["exchanges"][0]["timeframes"]
    assert body["exchanges"][0]["clock"] is None  # the sim at speed 1 keeps wall time


async def test_a_fast_sim_tells_how_its_clock_maps_wall_time(redis: Redis) -> None:
    # a sim that has run for an hour of wall time: 60 hours ahead of the wall
    await redis.set(SIM_ANCHOR_KEY, int((time.time() - 3600) * 1000))
    async with app_client(create_app(MarketSettings(sim_speed=60))) as client:
        sim = (await client.get("/market/exchanges")).json()["exchanges"][0]
        ticker = (await client.get("/market/ticker", params={"symbol": "BTC/USDT"})).json()
    assert sim["clock"]["speed"] == 60
    anchor = datetime.fromisoformat(sim["clock"]["anchor"])
    now = datetime.now(anchor.tzinfo)
    # the ticker is stamped with sim time: anchor + (wall - anchor) * speed
    mapped = anchor + (now - anchor) * 60
    stamped = datetime.fromisoformat(ticker["timestamp"])
    assert stamped - now > timedelta(hours=58)
    assert abs((stamped - mapped).total_seconds()) < 120


async def test_markets_report_precision_limits_and_fees(client: httpx.AsyncClient) -> None:
    markets = (await client.get("/market/markets")).json()["markets"]
    btc = markets["BTC/USDT"]
    assert btc["precision"] == {"amount": 0.00001, "price": 0.01}
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0
    assert btc["taker"] == btc["maker"] == 0.001


async def test_pairs_table_mirrors_the_markets(client: httpx.AsyncClient) -> None:
    async def synced() -> list[dict[str, str]]:  # the sync runs in the background at start-up
        pairs: list[dict[str, str]] = (await client.get("/market/pairs")).json()["pairs"]
        return pairs

    pairs = await eventually(synced)
    symbols = {p["symbol"] for p in pairs}
    assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= symbols
    eth_btc = next(p for p in pairs if p["symbol"] == "ETH/BTC")
    assert (eth_btc["base"], eth_btc["quote"], eth_btc["exchange"]) == ("ETH", "BTC", "sim")


async def test_health_reports_the_exchange(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["services"] == {"database": "up", "redis": "up", "exchange": "up"}
