"""`POST /trading/orders` on the paper broker: book walks, fees, balances, positions,
idempotency, clear 4xx that change nothing, and the owner-only reads."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.trading_engine.stubs import MarketStub
from trading_engine.models import Order, Trade


def order(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": "1",
        "price": None,
        "mode": "paper",
    }
    body.update(overrides)
    return body


async def wallet(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Decimal]:
    response = await client.get("/trading/balances", headers=headers)
    assert response.status_code == 200, response.text
    return {a["asset"]: Decimal(a["total"]) for a in response.json()["wallet"]}


async def test_market_buy_walks_the_book_and_pays_the_taker_fee(
    client: httpx.AsyncClient, market: MarketStub, new_user, redis: Redis
) -> None:
    user = await new_user()
    market.set_book("BTC/USDT", bids=[[99, 5]], asks=[[100, 1], [101, 2]])

    response = await client.post(
        "/trading/orders", json=order(quantity="2", client_order_id="buy-1"), headers=user.headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "filled"
    assert body["filled_quantity"] == "2.00000000"
    assert body["average_price"] == "100.50000000"
    assert body["fee"] == "0.20100000"  # 0.1 on the 100 level + 0.101 on the 101 level
    assert await wallet(client, user.headers) == {
        "USDT": Decimal("10000") - Decimal("201") - Decimal("0.201"),
        "BTC": Decimal("2"),
    }
    trades = (await client.get("/trading/trades", headers=user.headers)).json()["items"]
    assert sorted((t["side"], t["price"], t["fee"]) for t in trades) == [
        ("BUY", "100.00000000", "0.10000000"),
        ("BUY", "101.00000000", "0.10100000"),
    ]
    [position] = (await client.get("/trading/positions", headers=user.headers)).json()["items"]
    assert position["quantity"] == "2.00000000"
    assert position["average_entry_price"] == "100.50000000"
    assert position["cost_basis"] == "201.20100000"
    # Marked at the market service's last price (99, the stub's best bid).
    assert position["mark_price"] == "99.00000000"
    assert position["unrealized_pnl"] == "-3.20100000"
    mirrored = await redis.hgetall(f"trading:positions:{user.id}")
    assert json.loads(mirrored[position["id"]])["quantity"] == "2.00000000"
    executed = await redis.xrange("events:trade.executed")
    assert len(executed) == 2
    assert json.loads(executed[0][1]["data"])["side"] == "buy"
    requests = await redis.xrange("queue:notifications")
    assert {json.loads(f["data"])["source_event_id"] for _, f in requests} == {
        f["id"] for _, f in executed
    }


async def test_selling_the_position_realises_pnl_that_adds_up_with_the_wallet(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    market.set_price("BTC/USDT", 100)
    buy = await client.post("/trading/orders", json=order(quantity="3"), headers=user.headers)
    assert buy.status_code == 201
    market.set_book("BTC/USDT", bids=[[120, 1], [110, 10]], asks=[[121, 10]])

    sell = await client.post(
        "/trading/orders", json=order(side="sell", quantity="3"), headers=user.headers
    )

    assert sell.status_code == 201, sell.text
    trades = (await client.get("/trading/trades", headers=user.headers)).json()["items"]
    realised = sum(Decimal(t["pnl"]) for t in trades if t["pnl"] is not None)
    # bought 3 @ 100 (+0.3 fee); sold 1 @ 120 (-0.12) and 2 @ 110 (-0.22)
    assert realised == Decimal("340") - Decimal("0.34") - Decimal("300.3")
    assert await wallet(client, user.headers) == {
        "USDT": Decimal("10000") + realised,
        "BTC": Decimal("0"),
    }
    assert (await client.get("/trading/positions", headers=user.headers)).json()["items"] == []
    closed = (await client.get("/trading/positions?status=closed", headers=user.headers)).json()[
        "items"
    ]
    assert Decimal(closed[0]["realized_pnl"]) == realised


async def test_twenty_concurrent_retries_of_one_client_order_id_make_one_order(
    client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    user = await new_user()
    body = order(quantity="0.5", client_order_id="same-key")

    responses = await asyncio.gather(
        *(client.post("/trading/orders", json=body, headers=user.headers) for _ in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert await session.scalar(select(func.count()).select_from(Trade)) == 1
    assert (await wallet(client, user.headers))["BTC"] == Decimal("0.5")


async def test_insufficient_balance_is_a_clear_422_that_changes_nothing(
    client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    user = await new_user()

    response = await client.post(
        "/trading/orders", json=order(quantity="150"), headers=user.headers
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Insufficient USDT" in response.json()["detail"]
    assert await session.scalar(select(func.count()).select_from(Order)) == 0
    assert await wallet(client, user.headers) == {"USDT": Decimal("10000")}


async def test_selling_what_the_wallet_does_not_hold_is_refused(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    response = await client.post(
        "/trading/orders", json=order(side="sell", quantity="1"), headers=user.headers
    )
    assert response.status_code == 422
    assert "Insufficient BTC" in response.json()["detail"]


async def test_orders_below_the_market_minimums_are_refused_and_change_nothing(
    client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    user = await new_user()

    too_small_value = await client.post(
        "/trading/orders", json=order(quantity="0.05"), headers=user.headers
    )
    below_precision = await client.post(
        "/trading/orders", json=order(quantity="0.0000001"), headers=user.headers
    )

    assert too_small_value.status_code == 422
    assert "minimum cost" in too_small_value.json()["detail"]
    assert below_precision.status_code == 422
    assert "precision" in below_precision.json()["detail"]
    assert await session.scalar(select(func.count()).select_from(Order)) == 0
    assert await wallet(client, user.headers) == {"USDT": Decimal("10000")}


async def test_invalid_bodies_are_422_problems(client: httpx.AsyncClient, new_user) -> None:
    user = await new_user()
    for body in (
        order(type="limit"),  # no price
        order(quantity="-1"),
        order(side="hold"),
        order(quantity="0.123456789"),
    ):
        response = await client.post("/trading/orders", json=body, headers=user.headers)
        assert response.status_code == 422, body


@pytest.mark.parametrize(
    "query",
    [
        "offset=9223372036854775808",
        "limit=1001",
        "status=nonsense",
        "symbol=BTC%00USDT",
        "depth=3",
    ],
)
async def test_bad_list_queries_are_422_problems(
    client: httpx.AsyncClient, new_user, query
) -> None:
    user = await new_user()
    for route in ("/trading/orders", "/trading/trades", "/trading/positions"):
        response = await client.get(f"{route}?{query}", headers=user.headers)
        if route != "/trading/orders" and query.startswith("status"):
            continue  # trades take no status; positions take open/closed/all
        assert response.status_code == 422, (route, query, response.text)
        assert response.json()["title"] == "Unprocessable Content"


async def test_a_position_stays_unmarked_while_the_market_has_no_price(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    placed = await client.post("/trading/orders", json=order(), headers=user.headers)
    assert placed.status_code == 201, placed.text
    market.down = True
    page = (await client.get("/trading/positions?limit=1", headers=user.headers)).json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 1, 0)
    [position] = page["items"]
    assert position["mark_price"] is None
    assert position["unrealized_pnl"] is None


async def test_a_resting_limit_order_locks_funds_and_fills_at_its_price_with_the_maker_fee(
    app, client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    market.set_book("BTC/USDT", bids=[[99, 5]], asks=[[100, 5]])

    placed = await client.post(
        "/trading/orders", json=order(type="limit", price="95", quantity="2"), headers=user.headers
    )

    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "open"
    balances = (await client.get("/trading/balances", headers=user.headers)).json()["wallet"]
    usdt = next(a for a in balances if a["asset"] == "USDT")
    assert Decimal(usdt["locked"]) == Decimal("190.19")  # 190 + 0.1% maker fee
    created_ms = int(Decimal("1e3") * Decimal(str(__import__("time").time()))) + 60_000
    service = app.state.order_service
    await service.fill_resting("sim", "BTC/USDT", [created_ms, 99, 99, 96, 97, 1], 1)
    still_open = await client.get(f"/trading/orders/{placed.json()['id']}", headers=user.headers)
    assert still_open.json()["status"] == "open"  # the low never reached 95

    await service.fill_resting("sim", "BTC/USDT", [created_ms + 60_000, 97, 97, 94, 96, 1], 1)

    filled = (
        await client.get(f"/trading/orders/{placed.json()['id']}", headers=user.headers)
    ).json()
    assert filled["status"] == "filled"
    assert filled["average_price"] == "95.00000000"
    assert filled["fee"] == "0.19000000"
    assert await wallet(client, user.headers) == {
        "USDT": Decimal("10000") - Decimal("190.19"),
        "BTC": Decimal("2"),
    }


async def test_canceling_a_resting_order_releases_its_funds(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    placed = await client.post(
        "/trading/orders", json=order(type="limit", price="90", quantity="1"), headers=user.headers
    )
    canceled = await client.delete(f"/trading/orders/{placed.json()['id']}", headers=user.headers)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    again = await client.delete(f"/trading/orders/{placed.json()['id']}", headers=user.headers)
    assert again.status_code == 409
    balances = (await client.get("/trading/balances", headers=user.headers)).json()["wallet"]
    assert balances == [
        {"asset": "USDT", "free": "10000.00000000", "locked": "0E-8", "total": "10000.00000000"}
    ] or all(Decimal(a["locked"]) == 0 for a in balances)


async def test_another_users_orders_trades_and_positions_are_not_visible(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    alice, bob = await new_user(), await new_user()
    placed = await client.post("/trading/orders", json=order(), headers=alice.headers)
    order_id = placed.json()["id"]

    assert (await client.get(f"/trading/orders/{order_id}", headers=bob.headers)).status_code == 404
    assert (
        await client.delete(f"/trading/orders/{order_id}", headers=bob.headers)
    ).status_code == 404
    assert (await client.get("/trading/orders", headers=bob.headers)).json()["items"] == []
    assert (await client.get("/trading/trades", headers=bob.headers)).json()["items"] == []
    assert (await client.get("/trading/positions", headers=bob.headers)).json()["items"] == []


async def test_a_user_trading_limit_blocks_the_order_and_reports_the_breach(
    client: httpx.AsyncClient, market: MarketStub, new_user, redis: Redis, session: AsyncSession
) -> None:
    user = await new_user(limits={"max_order_value": "50"})

    response = await client.post("/trading/orders", json=order(), headers=user.headers)

    assert response.status_code == 422
    assert response.json()["rule"] == "max_order_value"
    assert await session.scalar(select(func.count()).select_from(Order)) == 0
    [(_, fields)] = await redis.xrange("events:risk.limit.exceeded")
    assert json.loads(fields["data"])["action"] == "blocked"


async def test_live_orders_need_the_live_permission(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    response = await client.post("/trading/orders", json=order(mode="live"), headers=user.headers)
    assert response.status_code == 403


async def test_the_market_service_being_down_is_a_503_with_retry_after(
    client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    user = await new_user()
    market.down = True
    response = await client.post("/trading/orders", json=order(), headers=user.headers)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_resetting_the_wallet_restores_the_starting_amount(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    await client.post("/trading/orders", json=order(quantity="2"), headers=user.headers)
    response = await client.post("/trading/balances/reset", headers=user.headers)
    assert response.status_code == 200
    assert await wallet(client, user.headers) == {"USDT": Decimal("10000")}
    assert (await client.get("/trading/positions", headers=user.headers)).json()["items"] == []
