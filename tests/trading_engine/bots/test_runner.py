"""Running paper bots end to end: candles arrive on `events:market.data.updated`, the
engine's runner trades through the paper book, and everything adds up."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.backtest import run_backtest
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.servers import app_client
from tests.trading_engine.bots.driver import (
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
from trading_engine.models import Order, Trade
from trading_engine.settings import TradingSettings


@pytest.fixture
async def running_app(
    engine_settings: Callable[..., TradingSettings],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(engine_settings(run_bots=True))
    async with app_client(app) as http:
        yield app, http


async def feed(
    client: httpx.AsyncClient,
    redis: Redis,
    market: MarketStub,
    rows: list[list[float]],
    bot_id: str,
    headers: dict[str, str],
    upto: int | None = None,
) -> None:
    for i in range(len(rows) if upto is None else upto):
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        state = await wait_candle_seen(client, bot_id, headers, rows[i][0])
        if state["status"] != "running":
            return


async def test_a_paper_bot_trades_like_the_backtest_and_its_books_add_up(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    _, client = running_app
    market.markets["sim"]["BTC/USDT"] = {
        **market.markets["sim"]["BTC/USDT"],
        "precision": {"amount": 1e-08, "price": 1e-08},
    }
    user = await new_user()
    rows = wave_candles(90)
    bot_id = await make_bot(client, user.headers, capital="1000")
    await eventually(lambda: _owned(redis, bot_id))

    await feed(client, redis, market, rows, bot_id, user.headers)

    trades = sorted(
        (await client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)).json()[
            "items"
        ],
        key=lambda t: (t["timestamp"], t["side"]),
    )
    backtest = run_backtest(
        create_strategy("ma_crossover", {"fast": 3, "slow": 8}),
        Candles.from_rows(rows),
        initial_capital=1000,
        fee=0.001,
    )
    expected: list[tuple[str, float, float]] = []
    for trade in backtest.trades:
        expected.append(("BUY", trade.entry_price, trade.quantity))
        if trade.exit_reason != "end":
            expected.append(("SELL", trade.exit_price, trade.quantity))
    assert len(expected) >= 4, "the series should make the strategy trade several times"
    final = await bot_state(client, bot_id, user.headers)
    assert [t["side"] for t in trades] == [e[0] for e in expected], final
    for got, (_, price, quantity) in zip(trades, expected, strict=True):
        assert float(got["price"]) == pytest.approx(price, abs=1e-8), (
            [(t["side"], t["price"], t["timestamp"]) for t in trades],
            expected,
        )
        assert float(got["quantity"]) == pytest.approx(quantity, rel=1e-7)
    closed_pnls = [Decimal(t["pnl"]) for t in trades if t["side"] == "SELL"]
    backtest_pnls = [t.pnl for t in backtest.trades if t.exit_reason != "end"]
    assert [float(p) for p in closed_pnls] == pytest.approx(backtest_pnls, abs=1e-4)

    # The books: quote balance = capital - open cost basis + realised PnL, to the satoshi.
    state = await bot_state(client, bot_id, user.headers)
    realised = sum(closed_pnls, start=Decimal(0))
    cost_basis = Decimal(state["position"]["cost_basis"]) if state["position"] else Decimal(0)
    assert Decimal(state["balances"]["USDT"]) == Decimal("1000") + realised - cost_basis
    assert Decimal(state["realized_pnl"]) == realised
    fees = sum((Decimal(t["fee"]) for t in trades), start=Decimal(0))
    assert fees > 0
    if state["position"]:
        held = Decimal(state["position"]["quantity"])
        assert Decimal(state["balances"]["BTC"]) == held
    wallet = (await client.get("/trading/balances", headers=user.headers)).json()["wallet"]
    assert Decimal(next(a for a in wallet if a["asset"] == "USDT")["total"]) == Decimal("9000")


async def _owned(redis: Redis, bot_id: str) -> bool:
    return bool(await redis.get(f"trading:bot:lease:{bot_id}"))


async def test_the_bot_registers_its_market_for_candles_while_it_runs(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    _, client = running_app
    user = await new_user()
    bot_id = await make_bot(client, user.headers)
    assert await redis.sismember("subscriptions:candles", "sim|BTC/USDT|1h")

    await client.post(f"/trading/bots/{bot_id}/stop", headers=user.headers)

    assert not await redis.sismember("subscriptions:candles", "sim|BTC/USDT|1h")
    await eventually(lambda: _released(redis, bot_id))


async def _released(redis: Redis, bot_id: str) -> bool:
    return not await redis.get(f"trading:bot:lease:{bot_id}")


async def test_a_stop_loss_closes_the_position_reports_it_and_the_bot_runs_on(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    _, client = running_app
    user = await new_user()
    rows = wave_candles(60)
    bot_id = await make_bot(client, user.headers, risk={"stop_loss": "0.01"})
    await eventually(lambda: _owned(redis, bot_id))

    await feed(client, redis, market, rows, bot_id, user.headers)

    state = await bot_state(client, bot_id, user.headers)
    assert state["status"] == "running"
    events = [json.loads(f["data"]) for _, f in await redis.xrange("events:risk.limit.exceeded")]
    assert (events[0]["rule"], events[0]["action"], events[0]["bot_id"]) == (
        "stop_loss",
        "closed",
        bot_id,
    )
    orders = (await client.get(f"/trading/orders?bot_id={bot_id}", headers=user.headers)).json()[
        "items"
    ]
    stops = [o for o in orders if o["reason"] == "stop_loss"]
    assert stops
    assert all(o["side"] == "sell" and o["status"] == "filled" for o in stops)
    kinds = [json.loads(f["data"])["kind"] for _, f in await redis.xrange("queue:notifications")]
    assert "risk.limit.exceeded" in kinds
    triggered = await redis.xrange("events:strategy.triggered")
    assert {json.loads(f["data"])["action"] for _, f in triggered} == {"buy", "sell"}


async def test_a_max_position_value_blocks_the_entry_and_the_bot_keeps_running(
    running_app, market: MarketStub, new_user, redis: Redis, session: AsyncSession
) -> None:
    _, client = running_app
    user = await new_user()
    rows = wave_candles(40)
    bot_id = await make_bot(client, user.headers, risk={"max_position_value": "100"})
    await eventually(lambda: _owned(redis, bot_id))

    await feed(client, redis, market, rows, bot_id, user.headers)

    state = await bot_state(client, bot_id, user.headers)
    assert state["status"] == "running"
    assert state["last_candle_at"].startswith("2026-01-02T15")  # every candle was seen
    assert await session.scalar(select(func.count()).select_from(Order)) == 0
    events = [json.loads(f["data"]) for _, f in await redis.xrange("events:risk.limit.exceeded")]
    assert events
    assert {(e["rule"], e["action"]) for e in events} == {("max_position_value", "blocked")}


async def test_a_failing_market_leaves_the_bot_running_and_it_catches_up(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    _app, client = running_app
    user = await new_user()
    rows = wave_candles(30)
    entry = 16  # the strategy's first buy: the order needs the market's book
    bot_id = await make_bot(client, user.headers)
    await eventually(lambda: _owned(redis, bot_id))
    await feed(client, redis, market, rows, bot_id, user.headers, upto=entry)

    expose(market, rows, entry)
    market.down = True
    await publish_candle(redis, rows[entry])
    failing = await eventually(lambda: _with_error(client, bot_id, user.headers))
    assert failing["status"] == "running"

    market.down = False
    state = await wait_candle_seen(client, bot_id, user.headers, rows[entry][0])
    assert state["error"] is None
    assert state["last_signal"]["action"] == "buy"
    assert state["position"] is not None


async def _with_error(client: httpx.AsyncClient, bot_id: str, headers: dict[str, str]) -> Any:
    state = await bot_state(client, bot_id, headers)
    return state if state["error"] is not None else None


async def test_stopping_a_bot_while_candles_are_processed_leaves_a_consistent_state(
    running_app, market: MarketStub, new_user, redis: Redis, session: AsyncSession
) -> None:
    app, client = running_app
    user = await new_user()
    rows = wave_candles(60)
    bot_id = await make_bot(client, user.headers)
    await eventually(lambda: _owned(redis, bot_id))
    handle = await eventually(lambda: _handle(app.state.bot_runner, bot_id))
    # Feed until the bot is one candle away from its first entry, then race the stop.
    backtest = run_backtest(
        create_strategy("ma_crossover", {"fast": 3, "slow": 8}), Candles.from_rows(rows), 1000
    )
    entry_signal = next(
        i - 1
        for i, r in enumerate(rows)
        if r[0] == int(backtest.trades[0].entry_at.timestamp() * 1000)
    )
    await feed(client, redis, market, rows, bot_id, user.headers, upto=entry_signal)
    expose(market, rows, entry_signal)

    await asyncio.gather(
        publish_candle(redis, rows[entry_signal]),
        client.post(f"/trading/bots/{bot_id}/stop", headers=user.headers),
    )
    # The runner is done with the candle once its sync let the stopped bot go (the
    # lease released) and no booking of the bot is in flight (its lock is free).
    await eventually(lambda: _let_go(redis, bot_id, handle))

    state = await bot_state(client, bot_id, user.headers)
    orders = await session.scalar(select(func.count()).select_from(Order))
    trades = await session.scalar(select(func.count()).select_from(Trade))
    assert state["status"] == "stopped"
    if orders:  # the candle committed before the stop: all of it
        assert trades == 1
        assert state["position"] is not None
        assert Decimal(state["balances"]["BTC"]) == Decimal(state["position"]["quantity"])
        assert state["last_signal"]["action"] == "buy"
    else:  # the stop won: nothing of the candle
        assert trades == 0
        assert Decimal(state["balances"]["USDT"]) == Decimal("1000")


async def test_editing_a_running_bots_risk_settings_applies_without_a_restart(
    running_app, market: MarketStub, new_user, redis: Redis
) -> None:
    app, client = running_app
    user = await new_user()
    bot_id = await make_bot(client, user.headers)
    runner = app.state.bot_runner
    await eventually(lambda: _handle(runner, bot_id))

    patched = await client.patch(
        f"/trading/bots/{bot_id}", json={"risk": {"stop_loss": "0.02"}}, headers=user.headers
    )

    assert patched.status_code == 200, patched.text

    async def applied() -> bool:
        handle = await _handle(runner, bot_id)
        return handle is not None and handle.adapter.risk.stop_loss == Decimal("0.02")

    await eventually(applied)


async def _let_go(redis: Redis, bot_id: str, handle: Any) -> bool:
    return await _released(redis, bot_id) and not handle.lock.locked()


async def _handle(runner, bot_id: str):
    return next((h for b, h in runner.handles.items() if str(b) == bot_id), None)


async def test_bots_of_one_market_book_a_candle_together_and_one_bots_failure_stays_its_own(
    running_app, market: MarketStub, new_user, redis: Redis, session: AsyncSession
) -> None:
    _, client = running_app
    user = await new_user()
    rows = wave_candles(40)
    expose(market, rows, 0)
    bots = [await make_bot(client, user.headers, capital="1000") for _ in range(3)]
    for bot_id in bots:
        await eventually(lambda bot_id=bot_id: _owned(redis, bot_id))
    strategy = create_strategy("ma_crossover", {"fast": 3, "slow": 8})
    first_buy = next(
        i
        for i in range(8, len(rows))
        if strategy.generate_signal(Candles.from_rows(rows[: i + 1])).action.value == "buy"
    )
    # A hand-made order that takes the third bot's client order id for that candle: its
    # order cannot be written, which rolls back the batch it shares with the others.
    clash = f"bot-{uuid.UUID(bots[2]).hex[:16]}-{int(rows[first_buy][0])}-buy"
    manual = await client.post(
        "/trading/orders",
        json={
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "side": "buy",
            "type": "market",
            "quantity": "0.2",
            "mode": "paper",
            "client_order_id": clash,
        },
        headers=user.headers,
    )
    assert manual.status_code == 201, manual.text

    for i in range(first_buy + 1):
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        for bot_id in bots[:2]:
            await wait_candle_seen(client, bot_id, user.headers, rows[i][0])

    bought = []
    for bot_id in bots[:2]:
        trades = (
            await client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)
        ).json()["items"]
        assert [t["side"] for t in trades] == ["BUY"]
        state = await bot_state(client, bot_id, user.headers)
        cost_basis = Decimal(state["position"]["cost_basis"])
        assert Decimal(state["balances"]["USDT"]) == Decimal("1000") - cost_basis
        assert Decimal(state["balances"]["BTC"]) == Decimal(state["position"]["quantity"])
        bought.append((trades[0]["price"], trades[0]["quantity"]))
    assert bought[0] == bought[1]  # same strategy, same candle, same book

    # The third bot retries alone at every sync; its failures are its own.
    failed = await eventually(lambda: _status(client, bots[2], user.headers, "error"), timeout=15)
    assert failed["position"] is None
    assert (
        await session.scalar(
            select(func.count()).select_from(Order).where(Order.bot_id == uuid.UUID(bots[2]))
        )
        == 0
    )
    for bot_id in bots[:2]:
        assert (await bot_state(client, bot_id, user.headers))["status"] == "running"

    # Without the clash the two bots' next orders (the exit) are booked in one transaction.
    i = first_buy
    while i + 1 < len(rows) and await _sells(session, bots[:2]) < 2:
        i += 1
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        for bot_id in bots[:2]:
            await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
    sells = await session.execute(
        text("SELECT bot_id, xmin::text FROM trades WHERE side = 'SELL' AND bot_id = ANY(:ids)"),
        {"ids": [uuid.UUID(b) for b in bots[:2]]},
    )
    assert len({xmin for _, xmin in sells}) == 1, "both exits in one transaction"
    for bot_id in bots[:2]:
        state = await bot_state(client, bot_id, user.headers)
        assert state["position"] is None
        assert Decimal(state["balances"]["USDT"]) == Decimal("1000") + Decimal(
            state["realized_pnl"]
        )


async def _sells(session: AsyncSession, bots: list[str]) -> int:
    await session.rollback()  # a fresh snapshot
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Trade)
            .where(Trade.side == "SELL", Trade.bot_id.in_([uuid.UUID(b) for b in bots]))
        )
        or 0
    )


async def _status(
    client: httpx.AsyncClient, bot_id: str, headers: dict[str, str], status: str
) -> Any:
    state = await bot_state(client, bot_id, headers)
    return state if state["status"] == status else None


async def test_a_restarted_bot_acts_from_its_start_not_on_the_candles_it_was_stopped_for(
    running_app, market: MarketStub, new_user, redis: Redis, session: AsyncSession
) -> None:
    _, client = running_app
    user = await new_user()
    rows = wave_candles(90)
    bot_id = await make_bot(client, user.headers)
    await eventually(lambda: _owned(redis, bot_id))
    await feed(client, redis, market, rows, bot_id, user.headers, upto=20)
    stopped = await client.post(f"/trading/bots/{bot_id}/stop", headers=user.headers)
    assert stopped.status_code == 200, stopped.text
    await eventually(lambda: _released(redis, bot_id))
    for i in range(20, 60):  # the market goes on (crossovers included) while it is stopped
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
    await eventually(lambda: _latest_is(redis, rows[59][0]))

    started = await client.post(f"/trading/bots/{bot_id}/start", headers=user.headers)

    assert started.status_code == 200, started.text
    await eventually(lambda: _owned(redis, bot_id))
    for i in range(60, 90):
        expose(market, rows, i)
        await publish_candle(redis, rows[i])
        await wait_candle_seen(client, bot_id, user.headers, rows[i][0])
    candles = [
        int(c.split("-")[2])
        for c in (
            await session.execute(
                select(Order.client_order_id).where(Order.bot_id == uuid.UUID(bot_id))
            )
        ).scalars()
    ]
    assert candles, "the series makes the bot trade after its restart"
    assert not [ts for ts in candles if rows[20][0] <= ts <= rows[59][0]]
    assert any(ts >= rows[60][0] for ts in candles)


async def _latest_is(redis: Redis, ts: float) -> bool:
    raw = await redis.hget("trading:candles:latest", "sim|BTC/USDT|1h")
    return raw is not None and json.loads(raw)["candle"][0] == ts
