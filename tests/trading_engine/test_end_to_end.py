"""The engine against the real market service (sim exchange, fast clock) on a real
uvicorn server: paper orders walk the sim's own order book, and a bot registered through
`subscriptions:candles` wakes on the market's `market.data.updated` and trades."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal

import httpx
import pytest

from market_service.main import create_app as create_market_app
from market_service.settings import MarketSettings
from tests.servers import UvicornThread, app_client
from tests.waiting import eventually
from trading_engine.main import create_app
from trading_engine.settings import TradingSettings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def market_service(service_env: dict[str, str]) -> Iterator[str]:
    settings = MarketSettings(sim_speed=600, candle_registry_interval=0.2, log_json=False)
    server = UvicornThread(create_market_app(settings)).start()
    yield server.url
    server.stop()


@pytest.fixture
async def client(
    engine_settings: Callable[..., TradingSettings], market_service: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine_settings(run_bots=True, market_service_urls=market_service))
    async with app_client(app) as http:
        yield http


async def test_a_paper_order_fills_against_the_sim_exchanges_order_book(
    client: httpx.AsyncClient, market_service: str, new_user
) -> None:
    user = await new_user()
    async with httpx.AsyncClient(base_url=market_service) as market:
        book = (await market.get("/market/orderbook", params={"symbol": "BTC/USDT"})).json()
    best_ask = Decimal(str(book["asks"][0][0]))

    response = await client.post(
        "/trading/orders",
        json={
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "side": "buy",
            "type": "market",
            "quantity": "0.01",
            "mode": "paper",
            "client_order_id": "e2e-1",
        },
        headers=user.headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "filled"
    assert abs(Decimal(body["average_price"]) - best_ask) / best_ask < Decimal("0.05")


async def test_a_bot_trades_on_candles_the_market_service_publishes(
    client: httpx.AsyncClient, new_user
) -> None:
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "fast", "strategy": "ma_crossover", "parameters": {"fast": 2, "slow": 3}},
        headers=user.headers,
    )
    created = await client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "timeframe": "1m",
            "mode": "paper",
            "capital": "1000",
        },
        headers=user.headers,
    )
    bot_id = created.json()["id"]
    await client.post(f"/trading/bots/{bot_id}/start", headers=user.headers)

    async def traded() -> list[dict[str, object]]:
        trades = (
            await client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)
        ).json()["items"]
        return trades if len(trades) >= 2 else []

    trades = await eventually(traded, timeout=40, interval=0.3)
    stopped = await client.post(f"/trading/bots/{bot_id}/stop", headers=user.headers)
    state = stopped.json()

    assert state["last_candle_at"] is not None
    assert len(trades) >= 2
    all_trades = (
        await client.get(f"/trading/trades?bot_id={bot_id}", headers=user.headers)
    ).json()["items"]
    realised = sum(
        (Decimal(str(t["pnl"])) for t in all_trades if t["pnl"] is not None), start=Decimal(0)
    )
    cost = Decimal(state["position"]["cost_basis"]) if state["position"] else Decimal(0)
    assert Decimal(state["balances"]["USDT"]) == Decimal("1000") + realised - cost
