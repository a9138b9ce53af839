"""Bots across engine processes: a SIGKILLed engine's bots resume on restart with nothing
doubled or lost, and two engines never run the same bot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

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


def expected_orders(rows: list[list[float]]) -> list[tuple[int, str]]:
    """(candle ts, side) of every order the strategy's signals call for, recomputed on
    each closed candle: a BUY while flat, a SELL while long."""
    strategy = create_strategy("ma_crossover", {"fast": 3, "slow": 8})
    long, out = False, []
    for i in range(len(rows)):
        action = strategy.generate_signal(Candles.from_rows(rows[: i + 1])).action.value
        if (action == "buy" and not long) or (action == "sell" and long):
            long = not long
            out.append((int(rows[i][0]), action))
    return out


async def start(engine: ServiceProcess) -> None:
    engine.start(wait=False)
    await asyncio.to_thread(engine.wait_listening, 90)  # a busy machine starts slowly


async def owned(engine: ServiceProcess) -> int:
    async with httpx.AsyncClient(base_url=engine.url, timeout=5) as client:
        for line in (await client.get("/metrics")).text.splitlines():
            if line.startswith("trading_bots_owned "):
                return int(float(line.split()[-1]))
    return 0


@pytest.mark.timeout(400)
async def test_two_engines_on_a_fast_clock_act_on_every_signal_once_through_kills_and_rebalance(
    market: MarketStub,
    users: UserStub,
    market_stub_server: tuple[MarketStub, str],
    user_stub_server: tuple[UserStub, str],
    new_user,
    redis: Redis,
    candle_channel: str,
    session,
) -> None:
    env = {
        "CANDLE_CHANNEL": candle_channel,
        "MARKET_SERVICE_URLS": market_stub_server[1],
        "USER_SERVICE_URLS": user_stub_server[1],
        "INTERNAL_API_TOKEN": UserStub.TOKEN,
        "BOT_SYNC_INTERVAL_S": "0.2",
        "BOT_LEASE_MS": "2000",
        "EVENT_CLAIM_IDLE_MS": "1000",
        "ORDER_BOOK_TTL_S": "0",
    }
    user = await new_user()
    rows = wave_candles(220)
    bots = 6
    a, b = ServiceProcess("trading", env=env), ServiceProcess("trading", env=env)
    engines = [a, b]
    try:
        for engine in engines:
            await start(engine)
        async with httpx.AsyncClient(base_url=a.url, timeout=10) as client:
            bot_ids = [await make_bot(client, user.headers) for _ in range(bots)]

            async def spread() -> bool:
                counts = [await owned(e) for e in (engines[0], engines[-1])]
                return counts == [bots // 2, bots // 2]

            await eventually(spread, timeout=20)

            fed = 0
            flowing = asyncio.Event()
            flowing.set()

            async def feed() -> None:
                nonlocal fed
                for i in range(len(rows)):
                    await flowing.wait()
                    expose(market, rows, i)
                    await publish_candle(redis, rows[i])
                    fed = i
                    await asyncio.sleep(0.12)  # a candle every 0.12 s: a fast sim clock

            async def fed_up_to(i: int) -> None:
                while fed < i:
                    await asyncio.sleep(0.02)

            async def chaos() -> None:
                for kill_at in (40, 120):
                    await fed_up_to(kill_at)
                    await asyncio.to_thread(engines[-1].kill)  # with its bots mid-stream
                    # ~25 candles close before the survivor takes over (2 s leases).
                    await fed_up_to(kill_at + 25)
                    flowing.clear()  # the clock waits while the replacement boots
                    engines.append(ServiceProcess("trading", env=env))
                    await start(engines[-1])
                    flowing.set()
                    # It gets its share handed over while candles flow.
                    await eventually(lambda: owned(engines[-1]), timeout=20)

            await asyncio.gather(feed(), chaos())
            for bot_id in bot_ids:
                await wait_candle_seen(client, bot_id, user.headers, rows[-1][0], timeout=30)
            await eventually(spread, timeout=20)
    finally:
        for engine in engines:
            await asyncio.to_thread(engine.kill)

    expected = expected_orders(rows)
    assert len(expected) >= 10
    for bot_id in bot_ids:
        ids = (
            await session.execute(
                text("SELECT client_order_id FROM orders WHERE bot_id = :b"), {"b": bot_id}
            )
        ).scalars()
        got = sorted((int(c.split("-")[2]), c.split("-")[3]) for c in ids)
        assert got == expected, bot_id
