"""Orders of one user racing each other: every one is booked, the position row
serialised per user and symbol, and a repeated key answers for the one order it names."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.servers import app_client
from tests.trading_engine.orders.test_router import order, wallet
from tests.trading_engine.stubs import MarketStub
from trading_engine.main import create_app
from trading_engine.models import Balance, Order, Position, Trade
from trading_engine.settings import TradingSettings


@pytest.fixture
async def patient_client(
    engine_settings: Callable[..., TradingSettings],
) -> AsyncIterator[httpx.AsyncClient]:
    """The engine with time to wait for a connection: forty orders of one user queue on
    their position one after the other, and a loaded machine must not turn that into
    503s (which are right, but not what these tests look at)."""
    app = create_app(engine_settings(run_bots=False, database_pool_timeout_seconds=60))
    async with app_client(app) as client:
        yield client


async def test_forty_concurrent_first_buys_of_one_user_open_one_position(
    patient_client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    client = patient_client
    user = await new_user()
    market.set_book("BTC/USDT", bids=[[100, 1000]], asks=[[100, 1000]])

    responses = await asyncio.gather(
        *(
            client.post("/trading/orders", json=order(quantity="0.1"), headers=user.headers)
            for _ in range(40)
        )
    )

    assert [(r.status_code, r.text) for r in responses if r.status_code != 201] == []
    assert await session.scalar(select(func.count()).select_from(Trade)) == 40
    positions = list(await session.scalars(select(Position)))
    assert [(p.status, p.quantity) for p in positions] == [("open", Decimal("4"))]
    assert (await wallet(client, user.headers))["BTC"] == Decimal("4")


async def test_forty_concurrent_alternating_buys_and_sells_are_all_booked(
    patient_client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    client = patient_client
    user = await new_user()
    market.set_book("BTC/USDT", bids=[[100, 1000]], asks=[[100, 1000]])
    first = await client.post("/trading/orders", json=order(quantity="1"), headers=user.headers)
    assert first.status_code == 201, first.text
    # Coins held beyond the position, so that a sell running before its buy is funded too:
    # each sell of the position closes it, each buy after opens a new one, concurrently.
    await session.execute(
        update(Balance)
        .where(Balance.user_id == user.id, Balance.asset == "BTC")
        .values(free=Balance.free + 100)
    )
    await session.commit()

    responses = await asyncio.gather(
        *(
            client.post(
                "/trading/orders",
                json=order(side="buy" if i % 2 == 0 else "sell", quantity="1"),
                headers=user.headers,
            )
            for i in range(40)
        )
    )

    assert [(r.status_code, r.text) for r in responses if r.status_code != 201] == []
    assert await session.scalar(select(func.count()).select_from(Trade)) == 41
    opened = await session.scalar(
        select(func.count()).select_from(Position).where(Position.status == "open")
    )
    assert opened <= 1
    assert (await wallet(client, user.headers))["BTC"] == Decimal("101")


async def test_a_client_order_id_reused_for_another_order_is_a_422_that_books_nothing(
    client: httpx.AsyncClient, market: MarketStub, new_user, session: AsyncSession
) -> None:
    user = await new_user()
    first = await client.post(
        "/trading/orders", json=order(quantity="0.5", client_order_id="k-1"), headers=user.headers
    )
    assert first.status_code == 201, first.text

    other_quantity = await client.post(
        "/trading/orders", json=order(quantity="0.7", client_order_id="k-1"), headers=user.headers
    )
    other_symbol = await client.post(
        "/trading/orders",
        json=order(symbol="ETH/USDT", quantity="0.5", client_order_id="k-1"),
        headers=user.headers,
    )

    for response, field in ((other_quantity, "quantity"), (other_symbol, "symbol")):
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "'k-1' was already used for another order" in problem["detail"]
        assert field in problem["detail"]
        assert problem["errors"][0]["loc"] == ["body", "client_order_id"]
        assert problem["order_id"] == first.json()["id"]
    assert await session.scalar(select(func.count()).select_from(Order)) == 1
    assert (await wallet(client, user.headers))["BTC"] == Decimal("0.5")


async def test_a_repeat_with_the_same_body_returns_the_first_order(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    body = order(quantity="0.5", client_order_id="k-2")
    first = await client.post("/trading/orders", json=body, headers=user.headers)
    # The same quantity spelt otherwise is the same order.
    again = await client.post(
        "/trading/orders", json={**body, "quantity": "0.50000"}, headers=user.headers
    )

    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["id"] == first.json()["id"]
