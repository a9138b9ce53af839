"""A ported freqtrade strategy reading a higher timeframe runs in a paper bot: the bot
loads the 4 h candles from the market (never the one still forming), watches them, and
trades exactly like the backtest on the same candles."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

import shared.strategies as registry
from shared.backtest import run_backtest
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.servers import app_client
from tests.trading_engine.bots.driver import (
    START_MS,
    STEP_MS,
    make_bot,
    publish_candle,
    wait_candle_seen,
)
from tests.trading_engine.stubs import MarketStub
from tests.waiting import eventually
from trading_engine.main import create_app
from trading_engine.settings import TradingSettings

EXAMPLES = Path(registry.__file__).parent / "examples"
FOUR_HOURS = 4 * STEP_MS
PARAMETERS = {"buy_rsi": 50, "sell_rsi": 60, "trend_period": 2}


def swinging_rows(n: int) -> list[list[float]]:
    """Hourly prices with a fast and a slow swing: the RSI crosses often, the 4 h trend
    turns every day or so, and some swings reach the strategy's 5 % stop."""
    rows: list[list[float]] = []
    previous = 100.0
    for i in range(n):
        close = 100 + 3 * math.sin(i / 2.3) + 4 * math.sin(i / 15)
        rows.append(
            [
                START_MS + i * STEP_MS,
                round(previous, 4),
                round(max(previous, close) + 0.3, 4),
                round(min(previous, close) - 0.3, 4),
                round(close, 4),
                10.0 + i,
            ]
        )
        previous = close
    return rows


def four_hour_candles(rows: list[list[float]]) -> list[list[float]]:
    """The market's 4 h candles after the last of ``rows`` closed, the forming one last."""
    buckets: dict[int, list[list[float]]] = {}
    for row in rows:
        buckets.setdefault(int(row[0]) // FOUR_HOURS * FOUR_HOURS, []).append(row)
    return [
        [
            ts,
            part[0][1],
            max(r[2] for r in part),
            min(r[3] for r in part),
            part[-1][4],
            sum(r[5] for r in part),
        ]
        for ts, part in sorted(buckets.items())
    ]


@pytest.fixture
async def running_app(
    engine_settings: Callable[..., TradingSettings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    monkeypatch.setenv("STRATEGIES_DIR", str(EXAMPLES))
    registry.reload_plugins()
    app = create_app(engine_settings(run_bots=True))
    try:
        async with app_client(app) as http:
            yield app, http
    finally:
        monkeypatch.delenv("STRATEGIES_DIR")
        registry.reload_plugins()


async def test_a_ported_strategy_with_a_four_hour_trend_trades_in_a_paper_bot_like_its_backtest(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    _, client = running_app
    market.markets["sim"]["BTC/USDT"] = {
        **market.markets["sim"]["BTC/USDT"],
        "precision": {"amount": 1e-08, "price": 1e-08},
    }
    user = await new_user()
    rows = swinging_rows(100)
    bot_id = await make_bot(
        client, user.headers, strategy="RsiTrendPullback", parameters=PARAMETERS, capital="1000"
    )
    await eventually(lambda: redis.sismember("subscriptions:candles", "sim|BTC/USDT|4h"))

    for i, row in enumerate(rows):
        market.candles[("sim", "BTC/USDT", "1h")] = rows[: i + 1]
        market.candles[("sim", "BTC/USDT", "4h")] = four_hour_candles(rows[: i + 1])
        market.set_price("BTC/USDT", rows[i + 1][1] if i + 1 < len(rows) else row[4])
        await publish_candle(redis, row)
        state = await wait_candle_seen(client, bot_id, user.headers, row[0])
        assert state["status"] == "running", state

    orders = (
        await client.get(f"/trading/orders?bot_id={bot_id}&limit=100", headers=user.headers)
    ).json()["items"]
    # In candle order; on one candle a protective exit comes before the signal's order.
    fills = sorted(
        orders,
        key=lambda o: (
            int(o["client_order_id"].split("-")[2]),
            o["client_order_id"].endswith(("-buy", "-sell")),
        ),
    )
    # The backtest aggregates the 4 h candles from the hourly ones itself.
    backtest = run_backtest(
        create_strategy("RsiTrendPullback", PARAMETERS),
        Candles.from_rows(rows),
        initial_capital=1000,
        fee=0.001,
    )
    expected: list[tuple[str, float, float]] = []
    for trade in backtest.trades:
        expected.append(("BUY", trade.entry_price, trade.quantity))
        if trade.exit_reason != "end":
            expected.append(("SELL", trade.exit_price, trade.quantity))
    assert {t.exit_reason for t in backtest.trades} >= {"stop_loss", "signal"}
    assert [o["side"].upper() for o in fills] == [e[0] for e in expected]
    for got, (_, price, quantity) in zip(fills, expected, strict=True):
        assert float(got["average_price"]) == pytest.approx(price, abs=1e-8)
        assert float(got["filled_quantity"]) == pytest.approx(quantity, rel=1e-7)
    # The bot's own check against its backtest finds nothing either.
    replay = await client.get(f"/trading/bots/{bot_id}/replay", headers=user.headers)
    assert replay.status_code == 200, replay.text
    assert replay.json()["differences"] == []
    assert any("ohlcv BTC/USDT 4h" in request for request in market.requests)


async def test_a_bot_on_a_timeframe_above_the_strategys_is_refused(running_app, new_user) -> None:
    _, client = running_app
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={
            "name": "daily",
            "strategy": "rules",
            "parameters": {"entry": 'rsi(14, tf="1h") < 30'},
        },
        headers=user.headers,
    )
    assert saved.status_code == 201, saved.text
    created = await client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "timeframe": "4h",
            "mode": "paper",
            "capital": "100",
        },
        headers=user.headers,
    )
    assert created.status_code == 422, created.text
    assert "not a whole multiple" in created.text


async def test_bad_parameters_of_a_dataframe_strategy_are_a_422(running_app, new_user) -> None:
    _, client = running_app
    user = await new_user()
    response = await client.post(
        "/trading/strategies",
        json={"name": "x", "strategy": "RsiTrendPullback", "parameters": {"buy_rsi": 5}},
        headers=user.headers,
    )
    assert response.status_code == 422, response.text
    assert "buy_rsi" in response.text
    catalog = (
        await client.get("/trading/strategies/catalog?limit=100", headers=user.headers)
    ).json()
    entry = next(e for e in catalog["items"] if e["name"] == "RsiTrendPullback")
    assert entry["parameters"]["properties"]["buy_rsi"]["minimum"] == 10
    assert entry["higher_timeframes"] == ["4h"]
