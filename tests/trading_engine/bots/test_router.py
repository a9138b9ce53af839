"""`/trading/bots` CRUD: capital moves between the wallet and the bot, never overdrawn."""

from __future__ import annotations

from decimal import Decimal

import httpx

from tests.trading_engine.bots.driver import make_bot
from tests.trading_engine.stubs import MarketStub


async def balances(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    return (await client.get("/trading/balances", headers=headers)).json()


async def test_creating_a_bot_moves_its_capital_from_the_wallet_and_deleting_returns_it(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    bot_id = await make_bot(client, user.headers, capital="2500", start=False)

    after_create = await balances(client, user.headers)
    assert after_create["wallet"][0]["total"] == "7500.00000000"
    assert after_create["bots"][0]["bot_id"] == bot_id
    bot_assets = {a["asset"]: a["total"] for a in after_create["bots"][0]["assets"]}
    assert bot_assets == {"USDT": "2500.00000000", "BTC": "0.00000000"}
    bot = (await client.get(f"/trading/bots/{bot_id}", headers=user.headers)).json()
    assert bot["status"] == "stopped"
    assert Decimal(bot["equity"]) == Decimal("2500")

    deleted = await client.delete(f"/trading/bots/{bot_id}", headers=user.headers)

    assert deleted.status_code == 204
    after_delete = await balances(client, user.headers)
    assert after_delete["wallet"][0]["total"] == "10000.00000000"
    assert after_delete["bots"] == []


async def test_a_bot_cannot_take_more_capital_than_the_wallet_holds(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "s", "strategy": "ma_crossover", "parameters": {}},
        headers=user.headers,
    )
    response = await client.post(
        "/trading/bots",
        json={"strategy_id": saved.json()["id"], "symbol": "BTC/USDT", "capital": "10000.01"},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert "paper wallet" in response.json()["detail"]
    assert (await client.get("/trading/bots", headers=user.headers)).json()["items"] == []
    assert (await balances(client, user.headers))["wallet"][0]["total"] == "10000.00000000"


async def test_a_running_bot_cannot_be_deleted_and_stop_start_switch_its_status(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    bot_id = await make_bot(client, user.headers)
    assert (await client.delete(f"/trading/bots/{bot_id}", headers=user.headers)).status_code == 409
    stopped = await client.post(f"/trading/bots/{bot_id}/stop", headers=user.headers)
    assert stopped.json()["status"] == "stopped"
    started = await client.post(f"/trading/bots/{bot_id}/start", headers=user.headers)
    assert started.json()["status"] == "running"


async def test_bad_bot_settings_are_422(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "s", "strategy": "ma_crossover", "parameters": {}},
        headers=user.headers,
    )
    base = {"strategy_id": saved.json()["id"], "symbol": "BTC/USDT", "capital": "100"}
    for extra in (
        {"capital": "-5"},
        {"timeframe": "7m"},
        {"mode": "margin"},
        {"risk": {"stop_loss": "1.5"}},
        {"risk": {"unknown_rule": 1}},
        {"symbol": "DOGE/USDT"},  # not traded on the sim exchange
    ):
        response = await client.post("/trading/bots", json={**base, **extra}, headers=user.headers)
        assert response.status_code == 422, (extra, response.text)


async def test_live_bots_need_the_live_permission(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    user = await new_user()
    saved = await client.post(
        "/trading/strategies",
        json={"name": "s", "strategy": "ma_crossover", "parameters": {}},
        headers=user.headers,
    )
    response = await client.post(
        "/trading/bots",
        json={
            "strategy_id": saved.json()["id"],
            "symbol": "BTC/USDT",
            "capital": "100",
            "mode": "live",
            "exchange": "binance",
        },
        headers=user.headers,
    )
    assert response.status_code == 403


async def test_another_users_bot_is_404_everywhere(
    client: httpx.AsyncClient, market: MarketStub, new_user
) -> None:
    alice, bob = await new_user(), await new_user()
    bot_id = await make_bot(client, alice.headers, start=False)
    for method, path in (
        ("GET", f"/trading/bots/{bot_id}"),
        ("PATCH", f"/trading/bots/{bot_id}"),
        ("DELETE", f"/trading/bots/{bot_id}"),
        ("POST", f"/trading/bots/{bot_id}/start"),
        ("POST", f"/trading/bots/{bot_id}/stop"),
        ("POST", f"/trading/bots/{bot_id}/close"),
    ):
        kwargs = {"json": {}} if method == "PATCH" else {}
        response = await client.request(method, path, headers=bob.headers, **kwargs)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/trading/bots", headers=bob.headers)).json()["items"] == []
    a_bot = (await client.get(f"/trading/bots/{bot_id}", headers=alice.headers)).json()
    assert a_bot["status"] == "stopped"
