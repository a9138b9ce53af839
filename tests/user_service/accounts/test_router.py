"""Preferences, trading limits and exchange keys: each user sees only their own."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.user_service.conftest import signed_up


async def test_preferences_round_trip_and_bad_channels_are_422(client: httpx.AsyncClient) -> None:
    headers = await signed_up(client, "ivan@example.com")
    assert (await client.get("/user/me/preferences", headers=headers)).json() == {}
    prefs = {"notifications": {"trade.executed": ["ws"], "bot.failed": []}, "theme": "dark"}
    put = await client.put("/user/me/preferences", json=prefs, headers=headers)
    assert put.status_code == 200, put.text
    got = await client.get("/user/me/preferences", headers=headers)
    assert got.json() == prefs
    bad = await client.put(
        "/user/me/preferences",
        json={"notifications": {"trade.executed": ["carrier-pigeon"]}},
        headers=headers,
    )
    assert bad.status_code == 422
    assert (await client.get("/user/me/preferences", headers=headers)).json() == prefs


async def test_trading_limits_are_decimal_strings_and_validated(
    client: httpx.AsyncClient,
) -> None:
    headers = await signed_up(client, "judy@example.com")
    assert (await client.get("/user/me/limits", headers=headers)).json() == {}
    limits = {"max_order_value": "1000.50", "max_open_positions": 3, "daily_loss_limit": 250}
    put = await client.put("/user/me/limits", json=limits, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json() == {
        "max_order_value": "1000.50",
        "max_open_positions": 3,
        "daily_loss_limit": "250",
    }
    assert (await client.get("/user/me/limits", headers=headers)).json() == put.json()
    for bad in (
        {"max_order_value": "-1"},
        {"max_open_positions": 0},
        {"surprise": 1},
        {"max_order_value": "abc"},
    ):
        response = await client.put("/user/me/limits", json=bad, headers=headers)
        assert response.status_code == 422, bad
    assert (await client.get("/user/me/limits", headers=headers)).json() == put.json()


async def test_exchange_keys_are_encrypted_at_rest_and_shown_masked(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    headers = await signed_up(client, "ken@example.com")
    created = await client.post(
        "/user/me/exchange-keys",
        json={
            "exchange": "binance",
            "api_key": "AKIA-public-1234",
            "api_secret": "s3cr3t-value",
            "passphrase": "pp-9",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["api_key_last4"] == "1234"
    assert body["api_key_masked"] == "****1234"
    assert body["has_passphrase"] is True
    assert "s3cr3t" not in created.text
    assert "AKIA-public" not in created.text
    listed = await client.get("/user/me/exchange-keys", headers=headers)
    assert [k["id"] for k in listed.json()] == [body["id"]]
    assert "s3cr3t" not in listed.text
    assert "AKIA-public" not in listed.text
    row = (
        await session.execute(
            text("SELECT api_key_encrypted, api_secret_encrypted FROM exchange_keys")
        )
    ).one()
    assert "AKIA" not in row[0]
    assert "s3cr3t" not in row[1]
    duplicate = await client.post(
        "/user/me/exchange-keys",
        json={"exchange": "binance", "api_key": "other-5678", "api_secret": "other-secret"},
        headers=headers,
    )
    assert duplicate.status_code == 409
    bad = await client.post(
        "/user/me/exchange-keys",
        json={"exchange": "Bin ance!", "api_key": "k-5678", "api_secret": "s-5678"},
        headers=headers,
    )
    assert bad.status_code == 422
    deleted = await client.delete(f"/user/me/exchange-keys/{body['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get("/user/me/exchange-keys", headers=headers)).json() == []


async def test_a_user_cannot_read_or_change_another_users_data(client: httpx.AsyncClient) -> None:
    alice = await signed_up(client, "alice2@example.com")
    mallory = await signed_up(client, "mallory@example.com")
    await client.put(
        "/user/me/preferences", json={"notifications": {"info": ["ws"]}}, headers=alice
    )
    await client.put("/user/me/limits", json={"max_order_value": "10"}, headers=alice)
    key = (
        await client.post(
            "/user/me/exchange-keys",
            json={"exchange": "gate", "api_key": "alice-key-0001", "api_secret": "alice-secret"},
            headers=alice,
        )
    ).json()

    assert (await client.get("/user/me/preferences", headers=mallory)).json() != {
        "notifications": {"info": ["ws"]}
    }
    assert (await client.get("/user/me/limits", headers=mallory)).json() == {}
    assert (await client.get("/user/me/exchange-keys", headers=mallory)).json() == []
    stolen = await client.delete(f"/user/me/exchange-keys/{key['id']}", headers=mallory)
    assert stolen.status_code == 404
    still = await client.get("/user/me/exchange-keys", headers=alice)
    assert [k["id"] for k in still.json()] == [key["id"]]
    # The public API has no route that takes another user's id.
    me = (await client.get("/user/me", headers=alice)).json()
    assert (
        await client.get(f"/user/internal/users/{me['id']}", headers=mallory)
    ).status_code == 401
