"""Feeding closed candles to a running engine the way the market service does."""

from __future__ import annotations

import math
from typing import Any

import httpx
from redis.asyncio import Redis

from shared.events import MARKET_DATA_UPDATED, Event, publish
from tests.trading_engine.stubs import MarketStub
from tests.waiting import eventually

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# Hourly candles: the backtest annualises returns, and a few hundred minutes of a
# swinging series would make its CAGR overflow a float.
TIMEFRAME = "1h"
STEP_MS = 3_600_000


def wave_candles(n: int, *, base: float = 100.0, seed: int = 0) -> list[list[float]]:
    """Prices that swing up and down, so a moving-average crossover trades several times."""
    rows: list[list[float]] = []
    previous = base
    for i in range(n):
        close = base + 8 * math.sin((i + seed) / 6.0) + 3 * math.sin((i + seed) / 2.3)
        open_ = previous
        rows.append(
            [
                START_MS + i * STEP_MS,
                round(open_, 4),
                round(max(open_, close) + 0.5, 4),
                round(min(open_, close) - 0.5, 4),
                round(close, 4),
                10.0 + i,
            ]
        )
        previous = close
    return rows


async def publish_candle(
    redis: Redis, candle: list[float], *, symbol: str = "BTC/USDT", timeframe: str = TIMEFRAME
) -> None:
    await publish(
        redis,
        Event(
            type=MARKET_DATA_UPDATED,
            data={"exchange": "sim", "symbol": symbol, "timeframe": timeframe, "candle": candle},
            source="market",
        ),
    )


def expose(market: MarketStub, rows: list[list[float]], i: int, symbol: str = "BTC/USDT") -> None:
    """The market after candle ``i`` closed: its history, and a book at the next open."""
    market.candles[("sim", symbol, TIMEFRAME)] = rows[: i + 1]
    next_open = rows[i + 1][1] if i + 1 < len(rows) else rows[i][4]
    market.set_price(symbol, next_open)


async def bot_state(client: httpx.AsyncClient, bot_id: str, headers: dict[str, str]) -> Any:
    response = await client.get(f"/trading/bots/{bot_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_candle_seen(
    client: httpx.AsyncClient, bot_id: str, headers: dict[str, str], ts: float, timeout: float = 10
) -> Any:
    from datetime import UTC, datetime

    expected = datetime.fromtimestamp(ts / 1000, UTC)

    async def seen() -> Any:
        state = await bot_state(client, bot_id, headers)
        at = state["last_candle_at"]
        if at is not None and datetime.fromisoformat(at) >= expected:
            return state
        if state["status"] != "running":
            return state
        return None

    return await eventually(seen, timeout=timeout)


async def make_bot(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    strategy: str = "ma_crossover",
    parameters: dict[str, Any] | None = None,
    capital: str = "1000",
    risk: dict[str, Any] | None = None,
    symbol: str = "BTC/USDT",
    start: bool = True,
) -> str:
    saved = await client.post(
        "/trading/strategies",
        json={
            "name": "test",
            "strategy": strategy,
            "parameters": parameters or {"fast": 3, "slow": 8},
        },
        headers=headers,
    )
    assert saved.status_code == 201, saved.text
    created = await client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "exchange": "sim",
            "symbol": symbol,
            "timeframe": TIMEFRAME,
            "mode": "paper",
            "capital": capital,
            "risk": risk or {},
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    bot_id: str = created.json()["id"]
    if start:
        started = await client.post(f"/trading/bots/{bot_id}/start", headers=headers)
        assert started.status_code == 200, started.text
    return bot_id
