"""`tradebot backfill` stores a range; the market service then serves it from PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from market_service.exchanges.sim import SimExchange
from market_service.main import create_app
from market_service.settings import MarketSettings
from tests.servers import app_client
from tradebot.cli import app as cli

SINCE = 1_735_689_600_000  # 2025-01-01


async def test_backfill_stores_the_range_and_the_service_serves_it_without_the_exchange(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
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

    market_app = create_app(MarketSettings())
    async with app_client(market_app) as client:
        exchange_reads: list[tuple[Any, ...]] = []
        sim = market_app.state.exchanges.get("sim")
        read = sim.fetch_ohlcv

        async def counted_read(*args: Any, **kwargs: Any) -> Any:
            exchange_reads.append(args)
            return await read(*args, **kwargs)

        monkeypatch.setattr(sim, "fetch_ohlcv", counted_read)
        response = await client.get(
            "/market/ohlcv",
            params={"symbol": "BTC/USDT", "timeframe": "15m", "since": str(SINCE), "limit": 240},
        )
    assert exchange_reads == []
    assert response.json()["candles"] == SimExchange(seed=42).ohlcv("BTC/USDT", "15m", SINCE, 240)


async def test_backfill_over_stored_candles_takes_the_exchanges_values(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ohlcv_data VALUES (to_timestamp(:ts), 'sim', 'ETH/USDT', '1h', "
                "1, 1, 1, 1, 1)"
            ),
            {"ts": (SINCE + 3_600_000) / 1000},
        )
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["backfill", "ETH/USDT", "--since", str(SINCE), "--until", str(SINCE + 5 * 3_600_000)],
    )
    assert result.exit_code == 0, result.output
    assert "Stored 5 candles" in result.output
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT open, high, low, close, volume FROM ohlcv_data "
                "WHERE symbol = 'ETH/USDT' ORDER BY timestamp"
            )
        )
        stored = [[float(v) for v in row] for row in rows]
    expected = SimExchange(seed=42).ohlcv("ETH/USDT", "1h", SINCE, 5)
    assert stored == [row[1:] for row in expected]


async def test_backfill_rejects_an_unknown_symbol_without_writing() -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["backfill", "NOPE/USDT", "--since", "2025-01-01"]
    )
    assert result.exit_code == 1
    assert "NOPE/USDT" in result.output
