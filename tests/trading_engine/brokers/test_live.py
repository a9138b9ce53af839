"""The live path: ccxt's real async ``binance`` class against a local server answering
like Binance, with the user's keys from the user service's internal API (docs/api.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.servers import UvicornThread, app_client
from tests.trading_engine.brokers.binance_stub import BinanceStub
from tests.trading_engine.stubs import UserStub
from trading_engine.main import create_app
from trading_engine.models import Order, Trade
from trading_engine.settings import TradingSettings

LIVE = ("trade:paper", "trade:live")


@pytest.fixture(scope="module")
def binance_server() -> Iterator[tuple[BinanceStub, str]]:
    stub = BinanceStub()
    server = UvicornThread(stub.app).start()
    yield stub, server.url
    server.stop()


@pytest.fixture
def binance(binance_server: tuple[BinanceStub, str]) -> BinanceStub:
    stub = binance_server[0]
    stub.reset()
    stub.api_keys.add("key-1")
    return stub


@pytest.fixture
def live_app(
    engine_settings: Callable[..., TradingSettings], binance_server: tuple[BinanceStub, str]
) -> FastAPI:
    return create_app(
        engine_settings(
            run_bots=False,
            live_exchange_urls={"binance": binance_server[1]},
            live_poll_interval_s=0.05,
            live_poll_timeout_s=5,
        )
    )


@pytest.fixture
async def live_client(live_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(live_app) as http:
        yield http


@pytest.fixture
def live_user(new_user, users: UserStub) -> Callable[..., object]:
    async def make(api_key: str = "key-1"):
        user = await new_user(permissions=LIVE)
        users.keys[(str(user.id), "binance")] = {
            "exchange": "binance",
            "api_key": api_key,
            "api_secret": "secret-1",
            "passphrase": None,
        }
        return user

    return make


def live_order(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": "1",
        "mode": "live",
        "client_order_id": "live-1",
    }
    body.update(overrides)
    return body


async def test_a_live_order_is_polled_until_filled_and_each_partial_fill_is_a_trade(
    live_client: httpx.AsyncClient, binance: BinanceStub, live_user, session: AsyncSession
) -> None:
    user = await live_user()
    binance.fill_plan = [Decimal("0.4"), Decimal("0.4"), Decimal("1")]

    response = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "filled"
    assert body["filled_quantity"] == "1.00000000"
    assert body["average_price"] == "100.00000000"
    assert body["exchange_order_id"] is not None
    assert binance.posts == 1
    assert binance.gets >= 2
    fills = (await session.scalars(select(Trade.quantity).order_by(Trade.quantity))).all()
    assert fills == [Decimal("0.4"), Decimal("0.6")]
    [position] = (await live_client.get("/trading/positions", headers=user.headers)).json()["items"]
    assert (position["mode"], position["quantity"]) == ("live", "1.00000000")


async def test_a_live_order_below_the_exchange_minimum_is_refused_before_it_is_sent(
    live_client: httpx.AsyncClient, binance: BinanceStub, live_user, session: AsyncSession
) -> None:
    user = await live_user()

    below_amount = await live_client.post(
        "/trading/orders", json=live_order(quantity="0.0004"), headers=user.headers
    )
    below_cost = await live_client.post(
        "/trading/orders", json=live_order(quantity="0.05"), headers=user.headers
    )

    assert below_amount.status_code == 422, below_amount.text
    assert below_cost.status_code == 422, below_cost.text
    assert "minimum cost" in below_cost.json()["detail"]
    assert binance.posts == 0
    assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_an_exchange_refusal_is_a_clear_4xx_and_the_order_is_recorded_rejected(
    live_client: httpx.AsyncClient, binance: BinanceStub, live_user, session: AsyncSession
) -> None:
    user = await live_user()
    binance.fail_post_with = (
        400,
        {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    )

    response = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)
    repeat = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)

    assert response.status_code == 422, response.text
    assert "insufficient balance" in response.json()["detail"]
    assert repeat.status_code == 200
    assert repeat.json()["status"] == "rejected"
    assert binance.posts == 1


async def test_order_creation_is_never_retried_and_a_lost_order_is_reconciled(
    live_app: FastAPI, live_client: httpx.AsyncClient, binance: BinanceStub, live_user
) -> None:
    user = await live_user()
    binance.fail_post_with = (503, {"code": -1001, "msg": "Internal error; unable to process"})

    response = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)

    assert response.status_code == 503, response.text
    assert "Retry-After" in response.headers
    assert binance.posts == 1
    [pending] = (await live_client.get("/trading/orders", headers=user.headers)).json()["items"]
    assert pending["status"] == "open"  # its fate is unknown until the venue is asked

    await live_app.state.order_service.live_orders.reconcile(older_than_s=0)

    [settled] = (await live_client.get("/trading/orders", headers=user.headers)).json()["items"]
    assert settled["status"] == "rejected"  # the venue never received it
    assert binance.posts == 1


async def test_a_refused_api_key_is_a_403(
    live_client: httpx.AsyncClient, binance: BinanceStub, live_user
) -> None:
    user = await live_user(api_key="revoked")
    response = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)
    assert response.status_code == 403, response.text


async def test_live_trading_without_stored_keys_is_refused(
    live_client: httpx.AsyncClient, binance: BinanceStub, new_user
) -> None:
    user = await new_user(permissions=LIVE)
    response = await live_client.post("/trading/orders", json=live_order(), headers=user.headers)
    assert response.status_code == 403
    assert "API key" in response.json()["detail"]


async def test_a_live_bot_buys_and_sells_through_the_adapter_once_per_candle(
    live_app: FastAPI,
    live_client: httpx.AsyncClient,
    binance: BinanceStub,
    live_user,
    session: AsyncSession,
) -> None:
    from shared.strategies import SignalAction, TradingSignal

    user = await live_user()
    bot_id, adapter = await _live_bot(live_app, live_client, user, session)
    assert await adapter.connection_exchange()
    hour = 3_600_000
    start = 1_767_225_600_000

    def signal(action: SignalAction, ts: int) -> TradingSignal:
        return TradingSignal(action=action, timestamp=ts, price=100.0, strategy="ma_crossover")

    bought = await adapter.on_candle([start, 100, 101, 99, 100, 1], signal(SignalAction.BUY, start))
    replay = await adapter.on_candle([start, 100, 101, 99, 100, 1], signal(SignalAction.BUY, start))
    sold = await adapter.on_candle(
        [start + hour, 100, 101, 99, 100, 1], signal(SignalAction.SELL, start + hour)
    )

    assert bought.result is not None
    assert bought.result.status == "filled"
    assert not replay.processed  # the candle was seen: no second order
    assert sold.result is not None
    assert sold.result.status == "filled"
    assert binance.posts == 2
    # 200 of capital / (100 x 1.001), at the exchange's 0.001 step
    assert bought.result.filled_quantity == Decimal("1.998")
    trades = (
        await live_client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)
    ).json()["items"]
    assert sorted(t["side"] for t in trades) == ["BUY", "SELL"]
    state = (await live_client.get(f"/trading/bots/{bot_id}", headers=user.headers)).json()
    assert state["position"] is None
    assert Decimal(state["realized_pnl"]) < 0  # same price both ways: the fees are the loss


async def _live_bot(
    live_app: FastAPI,
    live_client: httpx.AsyncClient,
    user,
    session: AsyncSession,
    risk: dict | None = None,
):
    """A started live binance bot of ``user`` and the adapter that runs it."""
    from shared.strategies import create_strategy
    from trading_engine.bots.adapter import Adapter
    from trading_engine.models import Bot

    saved = await live_client.post(
        "/trading/strategies",
        json={"name": "s", "strategy": "ma_crossover", "parameters": {}},
        headers=user.headers,
    )
    created = await live_client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "mode": "live",
            "capital": "200",
            **({} if risk is None else {"risk": risk}),
        },
        headers=user.headers,
    )
    assert created.status_code == 201, created.text
    bot_id = created.json()["id"]
    await live_client.post(f"/trading/bots/{bot_id}/start", headers=user.headers)
    bot = await session.get(Bot, uuid.UUID(bot_id))
    return bot_id, Adapter(bot, create_strategy("ma_crossover", {}), live_app.state.order_service)


def _signal(action: str, ts: int):
    from shared.strategies import SignalAction, TradingSignal

    return TradingSignal(
        action=SignalAction(action), timestamp=ts, price=100.0, strategy="ma_crossover"
    )


HOUR, START = 3_600_000, 1_767_225_600_000


async def test_a_live_bot_rests_its_stop_on_the_venue_moves_it_up_and_books_its_fill(
    live_app: FastAPI,
    live_client: httpx.AsyncClient,
    binance: BinanceStub,
    live_user,
    session: AsyncSession,
) -> None:
    user = await live_user()
    bot_id, adapter = await _live_bot(
        live_app, live_client, user, session, {"stop_loss": "0.02", "trailing_stop": "0.05"}
    )
    assert adapter.rests_venue_stop

    bought = await adapter.on_candle([START, 100, 101, 99, 100, 1], _signal("buy", START))

    assert bought.result is not None
    assert bought.result.status == "filled"
    [first] = [o for o in binance.orders.values() if o["type"] == "STOP_LOSS"]
    assert first["stop_price"] == Decimal("98.00")  # the stop loss is above the trailing level

    # The candle's high raises the peak: the stop moves to 110 x 0.95 for the next candle.
    await adapter.on_candle([START + HOUR, 100, 110, 99.5, 108, 1], _signal("hold", START + HOUR))

    stops = [o for o in binance.orders.values() if o["type"] == "STOP_LOSS"]
    assert first.get("canceled") is True
    assert [o["stop_price"] for o in stops if not o.get("canceled")] == [Decimal("104.50")]

    binance.price = Decimal("104.2")  # the venue's stop triggers inside the next candle
    sold = await adapter.on_candle(
        [START + 2 * HOUR, 108, 108.5, 103, 104, 1], _signal("hold", START + 2 * HOUR)
    )

    assert sold.result is not None
    assert (sold.result.action, sold.result.reason) == ("sell", "trailing_stop")
    assert sold.result.average_price == Decimal("104.2")
    state = (await live_client.get(f"/trading/bots/{bot_id}", headers=user.headers)).json()
    assert state["position"] is None
    assert state["status"] == "running"
    orders = (
        await live_client.get(f"/trading/orders?bot_id={bot_id}", headers=user.headers)
    ).json()["items"]
    assert sorted((o["type"], o["status"]) for o in orders) == [
        ("market", "filled"),
        ("stop", "canceled"),
        ("stop", "filled"),
    ]


async def test_where_the_venue_takes_no_stop_orders_the_bot_watches_and_sells_at_market(
    live_app: FastAPI,
    live_client: httpx.AsyncClient,
    binance: BinanceStub,
    live_user,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trading_engine.brokers import exit_support

    monkeypatch.setitem(exit_support.EXIT_SUPPORT, "binance", exit_support.WATCHED)
    user = await live_user()
    bot_id, adapter = await _live_bot(live_app, live_client, user, session, {"stop_loss": "0.02"})
    assert not adapter.rests_venue_stop
    await adapter.on_candle([START, 100, 101, 99, 100, 1], _signal("buy", START))

    binance.price = Decimal("97.5")
    sold = await adapter.on_candle(
        [START + HOUR, 100, 100.5, 97, 97.5, 1], _signal("hold", START + HOUR)
    )

    assert sold.result is not None
    assert (sold.result.action, sold.result.reason, sold.result.status) == (
        "sell",
        "stop_loss",
        "filled",
    )
    assert not [o for o in binance.orders.values() if o["type"] == "STOP_LOSS"]
    assert [o["type"] for o in binance.orders.values()] == ["MARKET", "MARKET"]
    state = (await live_client.get(f"/trading/bots/{bot_id}", headers=user.headers)).json()
    assert (state["position"], state["status"]) == (None, "running")
