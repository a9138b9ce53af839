"""A paper bot trades exactly like its backtest, protective exits included: the same
candles through a running engine and through the backtest give the same fills (side,
price to 1e-8, quantity, exit reason), and the bot keeps running after an exit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.backtest import run_backtest
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.servers import app_client
from tests.trading_engine.bots.driver import (
    START_MS,
    bot_state,
    expose,
    make_bot,
    publish_candle,
    wait_candle_seen,
    wave_candles,
)
from tests.trading_engine.stubs import MarketStub
from tests.waiting import eventually
from trading_engine.main import create_app
from trading_engine.models import Bot
from trading_engine.risk.pauses import next_utc_day
from trading_engine.settings import TradingSettings

STRATEGY = ("ma_crossover", {"fast": 3, "slow": 8})


@pytest.fixture
async def running_app(
    engine_settings: Callable[..., TradingSettings],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(engine_settings(run_bots=True))
    async with app_client(app) as http:
        yield app, http


def _entries(rows: list[list[float]]) -> list[int]:
    """Candle indexes where the strategy (without stops) enters."""
    result = run_backtest(create_strategy(*STRATEGY), Candles.from_rows(rows), 1000, fee=0.001)
    index = {int(r[0]): i for i, r in enumerate(rows)}
    return [index[int(t.entry_at.timestamp() * 1000)] for t in result.trades]


def _gap_through_the_stop(rows: list[list[float]]) -> list[list[float]]:
    """The candle after the first entry's opens 6 % lower, below a 2 % stop."""
    i = _entries(rows)[0] + 1
    open_ = rows[i - 1][4] * 0.94
    rows[i] = [rows[i][0], open_, open_ * 1.004, open_ * 0.99, open_ * 1.002, rows[i][5]]
    rows[i + 1][1] = open_ * 1.002
    return rows


def _touching_both(rows: list[list[float]]) -> list[list[float]]:
    """The candle after the first entry reaches 3 % below and 3 % above its open."""
    i = _entries(rows)[0]
    o = rows[i][1]
    rows[i] = [rows[i][0], o, o * 1.03, o * 0.97, o * 1.01, rows[i][5]]
    rows[i + 1][1] = o * 1.01
    return rows


CASES: list[tuple[str, dict[str, str], Callable[[list[list[float]]], list[list[float]]], set[str]]]
CASES = [
    ("stop loss and take profit", {"stop_loss": "0.01", "take_profit": "0.03"}, lambda r: r,
     {"stop_loss", "take_profit"}),
    ("trailing stop", {"trailing_stop": "0.015"}, lambda r: r, {"trailing_stop"}),
    ("gap through the stop", {"stop_loss": "0.02"}, _gap_through_the_stop, {"stop_loss"}),
    ("one candle touches both", {"stop_loss": "0.02", "take_profit": "0.02"}, _touching_both,
     {"stop_loss"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("risk", "shape", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_a_paper_bot_and_its_backtest_make_the_same_trades_with_protective_exits(
    running_app: tuple[FastAPI, httpx.AsyncClient],
    market: MarketStub,
    new_user: Callable[..., Any],
    redis: Redis,
    risk: dict[str, str],
    shape: Callable[[list[list[float]]], list[list[float]]],
    reasons: set[str],
) -> None:
    _, client = running_app
    market.markets["sim"]["BTC/USDT"] = {
        **market.markets["sim"]["BTC/USDT"],
        "precision": {"amount": 1e-08, "price": 1e-08},
    }
    user = await new_user()
    rows = shape(wave_candles(70))
    bot_id = await make_bot(client, user.headers, capital="1000", risk=risk)
    await eventually(lambda: _owned(redis, bot_id))

    for i in range(len(rows)):
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        state = await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
        assert state["status"] == "running", state  # a protective exit pauses nothing

    backtest = run_backtest(
        create_strategy(*STRATEGY),
        Candles.from_rows(rows),
        initial_capital=1000,
        fee=0.001,
        stop_loss=float(risk["stop_loss"]) if "stop_loss" in risk else None,
        take_profit=float(risk["take_profit"]) if "take_profit" in risk else None,
        trailing_stop=float(risk["trailing_stop"]) if "trailing_stop" in risk else None,
    )
    expected: list[tuple[str, float, float, str]] = []
    for trade in backtest.trades:
        expected.append(("buy", trade.entry_price, trade.quantity, "signal"))
        if trade.exit_reason != "end":
            expected.append(("sell", trade.exit_price, trade.quantity, trade.exit_reason))
    assert reasons <= {e[3] for e in expected}, "the candles should trigger the exits tested"
    assert sum(e[0] == "buy" for e in expected) >= 2, "the bot should re-enter after an exit"

    orders = (
        await client.get(f"/trading/orders?bot_id={bot_id}&limit=500", headers=user.headers)
    ).json()["items"]
    orders.sort(key=lambda o: (o["created_at"], o["side"] == "buy"))
    got = [
        (
            o["side"],
            float(o["average_price"]),
            float(o["filled_quantity"]),
            o["reason"] if o["reason"] in reasons | {"stop_loss", "take_profit", "trailing_stop"}
            else "signal",
        )
        for o in orders
    ]  # fmt: skip
    assert [(g[0], g[3]) for g in got] == [(e[0], e[3]) for e in expected], (got, expected)
    for (_, price, quantity, _), (_, want_price, want_quantity, _) in zip(
        got, expected, strict=True
    ):
        assert price == pytest.approx(want_price, abs=1e-8), (got, expected)
        assert quantity == pytest.approx(want_quantity, rel=1e-7)

    replay = await client.get(f"/trading/bots/{bot_id}/replay", headers=user.headers)
    assert replay.status_code == 200, replay.text
    assert replay.json()["differences"] == []
    assert replay.json()["fills"] == len(expected)


async def test_the_replay_names_a_fill_that_differs_and_is_owner_only(
    running_app: tuple[FastAPI, httpx.AsyncClient],
    market: MarketStub,
    new_user: Callable[..., Any],
    redis: Redis,
) -> None:
    _, client = running_app
    user, other = await new_user(), await new_user()
    rows = wave_candles(40)
    entry = _entries(rows)[0]
    bot_id = await make_bot(client, user.headers, capital="1000", risk={"stop_loss": "0.5"})
    await eventually(lambda: _owned(redis, bot_id))
    for i in range(entry + 1):
        expose(market, rows, i)
        if i == entry - 1:  # the book the bot buys from is 1 % above the next open
            market.set_price("BTC/USDT", rows[i + 1][1] * 1.01)
        await publish_candle(redis, rows[i])
        await wait_candle_seen(client, bot_id, user.headers, rows[i][0])

    replay = await client.get(f"/trading/bots/{bot_id}/replay", headers=user.headers)

    assert replay.status_code == 200, replay.text
    [difference] = replay.json()["differences"]
    assert difference["side"] == "buy"
    assert float(difference["bot"]["price"]) == pytest.approx(rows[entry][1] * 1.01, abs=1e-6)
    assert float(difference["backtest"]["price"]) == pytest.approx(rows[entry][1], abs=1e-8)
    foreign = await client.get(f"/trading/bots/{bot_id}/replay", headers=other.headers)
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("application/problem+json")


async def test_the_daily_loss_limit_pauses_the_bot_until_the_next_utc_day(
    running_app: tuple[FastAPI, httpx.AsyncClient],
    market: MarketStub,
    new_user: Callable[..., Any],
    redis: Redis,
    session: AsyncSession,
) -> None:
    _, client = running_app
    user = await new_user()
    # Candles of today: the limit counts the losses of fills stamped since 00:00 UTC (a
    # protective exit's fill carries its candle's close time).
    today_ms = int(next_utc_day().timestamp() * 1000) - 86_400_000
    rows = [[r[0] - START_MS + today_ms, *r[1:]] for r in wave_candles(70)]
    bot_id = await make_bot(
        client, user.headers, risk={"stop_loss": "0.01", "daily_loss_limit": "0.01"}
    )
    await eventually(lambda: _owned(redis, bot_id))
    for i in range(len(rows)):
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        state = await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
        if state["status"] != "running":
            break

    assert state["status"] == "paused"  # a stop lost money; the next entry hit the limit
    events = [json.loads(f["data"]) for _, f in await redis.xrange("events:risk.limit.exceeded")]
    assert ("daily_loss_limit", "paused") in {(e["rule"], e["action"]) for e in events}
    bot = await session.get(Bot, uuid.UUID(bot_id))
    assert bot is not None
    assert bot.paused_until == next_utc_day()

    # The next UTC day comes: the engine's sync sets the bot running again.
    await session.execute(
        update(Bot)
        .where(Bot.id == bot.id)
        .values(paused_until=datetime.now(UTC) - timedelta(seconds=1))
    )
    await session.commit()
    resumed = await eventually(lambda: _with_status(client, bot_id, user.headers, "running"))
    assert resumed["status"] == "running"


async def _with_status(
    client: httpx.AsyncClient, bot_id: str, headers: dict[str, str], status: str
) -> Any:
    state = await bot_state(client, bot_id, headers)
    return state if state["status"] == status else None


async def _owned(redis: Redis, bot_id: str) -> bool:
    return bool(await redis.get(f"trading:bot:lease:{bot_id}"))
