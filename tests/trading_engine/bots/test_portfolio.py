"""A paper bot over a list of pairs from one capital trades like the portfolio backtest on
the same candles: the same fills (pair, side, reason, price to 1e-8, quantity), entries in
pair-list order while a position slot is free (docs/trading.md, portfolio bots)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from shared.backtest import run_portfolio
from shared.candles import Candles
from shared.strategies import create_strategy
from tests.trading_engine.bots.driver import (
    STEP_MS,
    TIMEFRAME,
    bot_state,
    expose,
    publish_candle,
    wait_candle_seen,
    wave_candles,
)
from tests.trading_engine.bots.test_exits import _owned, running_app  # noqa: F401 - fixture
from tests.trading_engine.stubs import MarketStub
from tests.waiting import eventually

STRATEGY = ("ma_crossover", {"fast": 3, "slow": 8})
PAIRS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def candles_of_pairs(n: int, sol_seed: int) -> dict[str, list[list[float]]]:
    """BTC and ETH (a tenth of BTC) signal on the same candles; SOL too with ``sol_seed``
    0 (the same wave about another level: the entries of three pairs compete for two
    slots), on others with another seed (its entries meet slots BTC and ETH hold)."""
    btc = wave_candles(n)
    eth = [[r[0], *(v / 10 for v in r[1:5]), r[5]] for r in btc]
    sol = wave_candles(n, base=50.0, seed=sol_seed)
    return {"BTC/USDT": btc, "ETH/USDT": eth, "SOL/USDT": sol}


def fine_markets(market: MarketStub) -> None:
    """Amounts to 1e-8 and a small minimum, so the bot's quantities are the backtest's."""
    for pair in PAIRS:
        base, quote = pair.split("/")
        market.markets["sim"][pair] = {
            **market.markets["sim"]["BTC/USDT"],
            "symbol": pair,
            "base": base,
            "quote": quote,
            "precision": {"amount": 1e-08, "price": 1e-08},
            "limits": {"amount": {"min": 1e-08, "max": None}, "cost": {"min": 0.01, "max": None}},
        }


async def portfolio_bot(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    saved = await client.post(
        "/trading/strategies",
        json={"name": "portfolio", "strategy": STRATEGY[0], "parameters": STRATEGY[1]},
        headers=headers,
    )
    assert saved.status_code == 201, saved.text
    created = await client.post(
        "/trading/bots",
        json={"strategy_id": saved.json()["id"], "exchange": "sim", "timeframe": TIMEFRAME,
              "mode": "paper", **body},
        headers=headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize(
    ("settings", "risk", "sol_seed"),
    [({}, {"take_profit": "0.03"}, 0), ({"stake_amount": "400"}, {"stop_loss": "0.01"}, 36)],
    ids=["half of equity each, take profit", "fixed stake, stop loss"],
)
async def test_a_paper_portfolio_bot_trades_like_the_portfolio_backtest(
    running_app: tuple[FastAPI, httpx.AsyncClient],  # noqa: F811 - the fixture
    market: MarketStub,
    new_user: Callable[..., Any],
    redis: Redis,
    settings: dict[str, str],
    risk: dict[str, str],
    sol_seed: int,
) -> None:
    _, client = running_app
    fine_markets(market)
    user = await new_user()
    rows = candles_of_pairs(80, sol_seed)
    bot_id = await portfolio_bot(
        client, user.headers, pairs=PAIRS, max_open_positions=2, capital="1000", risk=risk,
        **settings,
    )  # fmt: skip
    created = await bot_state(client, bot_id, user.headers)
    assert (created["pairs"], created["symbol"], created["max_open_positions"]) == (
        PAIRS,
        "BTC/USDT",
        2,
    )
    started = await client.post(f"/trading/bots/{bot_id}/start", headers=user.headers)
    assert started.status_code == 200, started.text
    await eventually(lambda: _owned(redis, bot_id))

    n = len(rows["BTC/USDT"])
    for i in range(n):
        for pair in PAIRS:
            expose(market, rows[pair], i, symbol=pair)
        for pair in PAIRS:
            await publish_candle(redis, rows[pair][i], symbol=pair)
        state = await wait_candle_seen(client, bot_id, user.headers, rows["BTC/USDT"][i][0])
        assert state["status"] == "running", state

    backtest = run_portfolio(
        create_strategy(*STRATEGY),
        {pair: Candles.from_rows(rows[pair]) for pair in PAIRS},
        1000,
        0.001,
        max_open_positions=2,
        stake_amount=settings.get("stake_amount"),
        stop_loss=float(risk["stop_loss"]) if "stop_loss" in risk else None,
        take_profit=float(risk["take_profit"]) if "take_profit" in risk else None,
    )
    assert backtest.metrics["entries_skipped"] > 0, "the slots should turn entries away"
    protective = {"stop_loss", "take_profit"} & {t.exit_reason for t in backtest.trades}
    assert protective, "the candles should trigger the protective exit tested"
    # Each backtest fill, on the candle the bot acts at: a signal order on the candle
    # before its fill's open, a protective exit on its own candle.
    expected: list[tuple[int, str, str, str, float, float]] = []
    for trade in backtest.trades:
        entry_ms = int(trade.entry_at.timestamp() * 1000) - STEP_MS
        expected.append((entry_ms, trade.pair, "buy", "signal", trade.entry_price, trade.quantity))
        if trade.exit_reason == "end":
            continue
        exit_ms = int(trade.exit_at.timestamp() * 1000)
        if trade.exit_reason == "signal":
            exit_ms -= STEP_MS
        expected.append(
            (exit_ms, trade.pair, "sell", trade.exit_reason, trade.exit_price, trade.quantity)
        )
    expected.sort()

    last_ms = int(rows["BTC/USDT"][-1][0])  # the backtest ignores the last candle's signal
    orders = (
        await client.get(f"/trading/orders?bot_id={bot_id}&limit=500", headers=user.headers)
    ).json()["items"]
    got = sorted(
        (
            int(o["client_order_id"].split("-")[2]),
            o["symbol"],
            o["side"],
            o["reason"] or "signal",
            float(o["average_price"]),
            float(o["filled_quantity"]),
        )
        for o in orders
        if int(o["client_order_id"].split("-")[2]) < last_ms
    )
    assert [g[:4] for g in got] == [e[:4] for e in expected], (got, expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine[4] == pytest.approx(theirs[4], abs=1e-8), (mine, theirs)
        assert mine[5] == pytest.approx(theirs[5], rel=1e-7), (mine, theirs)

    final = await bot_state(client, bot_id, user.headers)
    open_pairs = {p["symbol"] for p in final["positions"]}
    assert len(open_pairs) <= 2
    assert open_pairs == {t.pair for t in backtest.trades if t.exit_reason == "end"}
    assert set(final["last_signal"]["pairs"]) == set(PAIRS)


async def test_a_portfolio_bot_is_refused_for_bad_pairs_settings(
    client: httpx.AsyncClient, market: MarketStub, new_user: Callable[..., Any]
) -> None:
    fine_markets(market)
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "p", "strategy": STRATEGY[0], "parameters": STRATEGY[1]},
        headers=user.headers,
    )
    base = {"strategy_id": saved.json()["id"], "capital": "100", "timeframe": TIMEFRAME}
    for body, message in [
        ({"pairs": PAIRS, "max_open_positions": 4}, "more than the pairs"),
        ({"pairs": ["BTC/USDT", "BTC/USDT"]}, "listed twice"),
        ({"pairs": ["BTC/USDT", "ETH/BTC"]}, "one quote currency"),
        ({"pairs": PAIRS, "mode": "live"}, "paper mode"),
        ({"pairs": PAIRS, "stake_amount": "10", "position_size": "0.5"}, "not both"),
        ({"symbol": "BTC/USDT", "max_open_positions": 1}, "need pairs"),
        ({"symbol": "ETH/USDT", "pairs": PAIRS}, "its first pair"),
    ]:
        response = await client.post("/trading/bots", json={**base, **body}, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
        assert message in response.text, (body, response.text)
    unknown = await client.post(
        "/trading/bots", json={**base, "pairs": ["BTC/USDT", "DOGE/USDT"]}, headers=user.headers
    )
    assert unknown.status_code in (404, 422), unknown.text
    assert "DOGE/USDT" in unknown.text


async def test_a_portfolio_bot_of_a_higher_timeframe_strategy_is_refused(
    client: httpx.AsyncClient, market: MarketStub, new_user: Callable[..., Any]
) -> None:
    fine_markets(market)
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "h", "strategy": "rules", "parameters": {"entry": 'rsi(14, tf="4h") < 30'}},
        headers=user.headers,
    )
    assert saved.status_code == 201, saved.text
    response = await client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "capital": "100",
            "timeframe": TIMEFRAME,
            "pairs": PAIRS,
        },
        headers=user.headers,
    )
    assert response.status_code == 422, response.text
    assert "higher timeframes" in response.text
