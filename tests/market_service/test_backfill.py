"""`tradebot backfill` stores a range; the market service then serves it from PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from market_service.exchanges.sim import SimExchange
from shared.cli.main import app as cli
from tests.market_service.exchange_calls import count_calls

SINCE = 1_735_689_600_000  # 2025-01-01


async def test_backfill_stores_the_range_and_the_service_serves_it_without_the_exchange(
    engine: AsyncEngine, market_app: FastAPI, client: httpx.AsyncClient
) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        [
            "backfill",
            "BTC/USDT",
            "--since",
            "2025-01-01",
            "--until",
            "2025-01-03T12:00:00Z",
            "--timeframe",
            "15m",
            "--exchange",
            "sim",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Stored 240 candles" in result.output
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM ohlcv_data WHERE symbol='BTC/USDT' AND timeframe='15m'")
        )
    assert count == 240  # 2.5 days of 15 m candles, 1 000 per page

    calls = count_calls(market_app)
    response = await client.get(
        "/market/ohlcv",
        params={"symbol": "BTC/USDT", "timeframe": "15m", "since": str(SINCE), "limit": 240},
    )
    assert calls["fetch_ohlcv"] == 0
    assert response.json()["candles"] == SimExchange(seed=42).ohlcv("BTC/USDT", "15m", SINCE, 240)


async def test_backfill_rejects_an_unknown_symbol_without_writing() -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["backfill", "NOPE/USDT", "--since", "2025-01-01"]
    )
    assert result.exit_code == 1
    assert "NOPE/USDT" in result.output
