"""`/analysis/performance` over the trades the trade consumer recorded from
`trade.executed` events."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from analysis_service.models import PerformanceTrade
from shared.events import TRADE_EXECUTED, Event, publish
from tests.factories import create_user
from tests.waiting import eventually

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trade(user_id, *, bot_id=None, side="sell", pnl=None, fee="0.1", minutes=0, symbol="BTC/USDT"):
    return Event(
        type=TRADE_EXECUTED,
        source="trading",
        data={
            "trade_id": str(uuid.uuid4()),
            "order_id": str(uuid.uuid4()),
            "user_id": str(user_id),
            "bot_id": str(bot_id) if bot_id else None,
            "exchange": "sim",
            "symbol": symbol,
            "side": side,
            "price": "100.5",
            "quantity": "0.01",
            "fee": fee,
            "fee_currency": "USDT",
            "pnl": pnl,
            "mode": "paper",
            "strategy": "ma_crossover",
            "executed_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        },
    )


async def test_performance_counts_realised_pnl_win_rate_and_drawdown_per_bot(
    client, user, session, redis
):
    bot = uuid.uuid4()
    events = [
        trade(user.id, bot_id=bot, side="buy", minutes=0),
        trade(user.id, bot_id=bot, pnl="10.00", minutes=1),
        trade(user.id, bot_id=bot, pnl="-4.00", minutes=2),
        trade(user.id, bot_id=bot, pnl="-3.50", minutes=3),
        trade(user.id, bot_id=bot, pnl="5.25", minutes=4),
        trade(user.id, pnl="-1.00", minutes=5, symbol="ETH/USDT"),  # manual, no bot
    ]
    for event in events:
        await publish(redis, event)
    await publish(redis, events[1])  # delivered twice: applied once
    other = await create_user(session, redis)
    await publish(redis, trade(other.id, pnl="1000", minutes=6))

    async def stored():
        return await session.scalar(select(func.count()).select_from(PerformanceTrade)) == 7

    await eventually(stored)
    response = await client.get("/analysis/performance", headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    total = body["total"]
    assert total["realised_pnl"] == "6.75000000"
    assert total["fees"] == "0.60000000"
    assert (total["n_fills"], total["n_closed"], total["wins"], total["losses"]) == (6, 5, 2, 3)
    assert total["win_rate"] == 0.4
    assert total["max_drawdown"] == "7.50000000"  # cumulative 10 -> 6 -> 2.5 -> 7.75 -> 6.75
    bots = {b["bot_id"]: b for b in body["bots"]}
    assert bots[str(bot)]["realised_pnl"] == "7.75000000"
    assert bots[str(bot)]["max_drawdown"] == "7.50000000"
    assert bots[None]["symbols"] == ["ETH/USDT"]
    only_bot = await client.get(
        "/analysis/performance", params={"bot_id": str(bot)}, headers=user.headers
    )
    assert only_bot.json()["total"]["n_fills"] == 5


async def test_a_malformed_trade_event_is_dead_lettered_not_stored(client, user, session, redis):
    bad = trade(user.id, pnl="10")
    bad.data["price"] = "not-a-number"
    await publish(redis, bad)
    good = trade(user.id, pnl="1")
    await publish(redis, good)

    async def good_stored():
        return await session.scalar(select(func.count()).select_from(PerformanceTrade)) == 1

    await eventually(good_stored)
    body = (await client.get("/analysis/performance", headers=user.headers)).json()
    assert body["total"]["realised_pnl"] == "1.00000000"


async def test_performance_needs_a_token(client):
    assert (await client.get("/analysis/performance")).status_code == 401
