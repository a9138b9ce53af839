"""Bots across engine processes: a SIGKILLed engine's bots resume on restart with nothing
doubled or lost, and two engines never run the same bot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from redis.asyncio import Redis

from shared.backtest import run_backtest
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.servers import ServiceProcess, app_client
from tests.trading_engine.bots.driver import (
    expose,
    make_bot,
    publish_candle,
    wait_candle_seen,
    wave_candles,
)
from tests.trading_engine.stubs import MarketStub, UserStub
from tests.waiting import eventually
from trading_engine.main import create_app
from trading_engine.settings import TradingSettings

pytestmark = pytest.mark.e2e


def expected_trades(rows: list[list[float]]) -> list[tuple[str, float]]:
    result = run_backtest(
        create_strategy("ma_crossover", {"fast": 3, "slow": 8}), Candles.from_rows(rows), 1000
    )
    out: list[tuple[str, float]] = []
    for trade in result.trades:
        out.append(("BUY", trade.entry_price))
        if trade.exit_reason != "end":
            out.append(("SELL", trade.exit_price))
    return out


async def test_a_killed_engine_resumes_its_bot_on_restart_without_doubling_or_losing(
    market: MarketStub,
    users: UserStub,
    market_stub_server: tuple[MarketStub, str],
    user_stub_server: tuple[UserStub, str],
    new_user,
    redis: Redis,
    candle_channel: str,
) -> None:
    env = {
        "CANDLE_CHANNEL": candle_channel,
        "MARKET_SERVICE_URLS": market_stub_server[1],
        "USER_SERVICE_URLS": user_stub_server[1],
        "INTERNAL_API_TOKEN": UserStub.TOKEN,
        "BOT_SYNC_INTERVAL_S": "0.2",
        "BOT_LEASE_MS": "2000",
        "ORDER_BOOK_TTL_S": "0",
    }
    user = await new_user()
    rows = wave_candles(70)
    expected = expected_trades(rows)
    entries = [
        i - 1
        for i, row in enumerate(rows)
        if any(price == row[1] for side, price in expected if side == "BUY")
    ]
    kill_at = entries[1]  # the second entry's signal candle: killed right as it arrives

    first = ServiceProcess("trading", env=env)
    try:
        await asyncio.to_thread(first.start)  # a start that fails still kills it below
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            bot_id = await make_bot(client, user.headers)
            await eventually(lambda: redis.get(f"trading:bot:lease:{bot_id}"))
            for i in range(kill_at):
                expose(market, rows, i)
                await publish_candle(redis, rows[i])
                await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
            expose(market, rows, kill_at)
            await publish_candle(redis, rows[kill_at])
            await asyncio.to_thread(first.kill)
    finally:
        await asyncio.to_thread(first.kill)

    # While the engine is down another candle closes (the one after the entry signal).
    expose(market, rows, kill_at + 1)
    await publish_candle(redis, rows[kill_at + 1])

    second = ServiceProcess("trading", env=env)
    try:
        await asyncio.to_thread(second.start)  # a start that fails still kills it below
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as client:
            await wait_candle_seen(client, bot_id, user.headers, rows[kill_at + 1][0], timeout=20)
            for i in range(kill_at + 2, len(rows)):
                expose(market, rows, i)
                await publish_candle(redis, rows[i])
                await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
            trades = (
                await client.get(
                    f"/trading/trades?bot_id={bot_id}&limit=1000", headers=user.headers
                )
            ).json()["items"]
    finally:
        await asyncio.to_thread(second.stop)

    got = sorted((t["timestamp"], t["side"], float(t["price"])) for t in trades)
    # The entry signalled at the kill is taken once; the candle while down is not lost.
    # Only the entry at the kill may fill one candle late (the book had moved on).
    assert [side for _, side, _ in got] == [side for side, _ in expected]
    for (_, _, price), (_, expected_price) in zip(got, expected, strict=True):
        assert price == pytest.approx(expected_price, abs=1e-8) or price in {
            rows[kill_at + 1][1],
            rows[kill_at + 2][1],
        }


async def test_two_engines_never_run_the_same_bot_and_one_takes_over_the_others(
    engine_settings: Callable[..., TradingSettings], market: MarketStub, new_user, redis: Redis
) -> None:
    user = await new_user()
    rows = wave_candles(40)
    async with AsyncExitStack() as stack:
        app_a = create_app(engine_settings(run_bots=True))
        app_b = create_app(engine_settings(run_bots=True))
        client = await stack.enter_async_context(app_client(app_a))
        stack_b = AsyncExitStack()
        await stack_b.enter_async_context(app_client(app_b))
        bot_ids = [await make_bot(client, user.headers) for _ in range(8)]

        async def all_owned() -> bool:
            owned = set(app_a.state.bot_runner.handles) | set(app_b.state.bot_runner.handles)
            return {str(b) for b in owned} == set(bot_ids)

        await eventually(all_owned)
        a = {str(b) for b in app_a.state.bot_runner.handles}
        b = {str(b) for b in app_b.state.bot_runner.handles}
        assert not a & b
        for bot_id in bot_ids:
            owner = await redis.get(f"trading:bot:lease:{bot_id}")
            runner = app_a.state.bot_runner if bot_id in a else app_b.state.bot_runner
            assert owner == runner.replica_id

        for i in range(len(rows)):
            expose(market, rows, i)
            await publish_candle(redis, rows[i])
            for bot_id in bot_ids:
                await wait_candle_seen(client, bot_id, user.headers, rows[i][0])

        expected = expected_trades(rows)
        for bot_id in bot_ids:
            trades = (
                await client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)
            ).json()["items"]
            assert len(trades) == len(expected), bot_id

        await stack_b.aclose()  # engine B shuts down: A adopts every bot

        async def a_owns_all() -> bool:
            return {str(x) for x in app_a.state.bot_runner.handles} == set(bot_ids)

        await eventually(a_owns_all, timeout=15)
