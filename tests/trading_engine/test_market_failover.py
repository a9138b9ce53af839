"""Two real market service replicas (sim exchange, uvicorn) behind the engine: when the
first one stops, books, rules and paper orders come from the second."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from market_service.main import create_app as create_market_app
from market_service.settings import MarketSettings
from shared.service_client import ServiceClient
from tests.servers import UvicornThread, app_client
from trading_engine.main import create_app
from trading_engine.market_client import MarketClient
from trading_engine.settings import TradingSettings

pytestmark = pytest.mark.e2e


def market_replica() -> UvicornThread:
    settings = MarketSettings(sim_speed=600, candle_registry_interval=0.2, log_json=False)
    return UvicornThread(create_market_app(settings))


def paper_buy(client_order_id: str) -> dict[str, str]:
    return {
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": "0.01",
        "mode": "paper",
        "client_order_id": client_order_id,
    }


async def test_the_market_client_reads_from_the_second_replica_when_the_first_stops(
    service_env: dict[str, str],
) -> None:
    async with market_replica() as first, market_replica() as second:
        async with ServiceClient("market", [first.url, second.url], caller="test") as http:
            market = MarketClient(http, rules_ttl_s=0)
            assert (await market.order_book("sim", "BTC/USDT")).asks
            await asyncio.to_thread(first.stop)

            book = await market.order_book("sim", "BTC/USDT")
            rules = await market.rules("sim", "ETH/USDT")

            assert book.asks
            assert book.bids
            assert rules.symbol == "ETH/USDT"
            assert rules.min_cost > 0


async def test_a_paper_order_succeeds_while_the_first_market_replica_is_down(
    service_env: dict[str, str], engine_settings: Callable[..., TradingSettings], new_user
) -> None:
    user = await new_user()
    async with market_replica() as first, market_replica() as second:
        app = create_app(
            engine_settings(run_bots=False, market_service_urls=f"{first.url},{second.url}")
        )
        async with app_client(app) as client:
            before = await client.post(
                "/trading/orders", json=paper_buy("failover-1"), headers=user.headers
            )
            assert before.status_code == 201, before.text
            await asyncio.to_thread(first.stop)

            after = await client.post(
                "/trading/orders", json=paper_buy("failover-2"), headers=user.headers
            )

    assert after.status_code == 201, after.text
    assert after.json()["status"] == "filled"
