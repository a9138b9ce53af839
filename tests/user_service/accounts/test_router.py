"""`/user/me`, its preferences and trading limits: each user sees only their own."""

from __future__ import annotations

import httpx

from tests.user_service.sign_up import signed_up


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


async def test_preferences_have_a_schema_and_a_bound(client: httpx.AsyncClient) -> None:
    headers = await signed_up(client, "kim@example.com")
    prefs = {"theme": "light", "notifications": {"info": ["ws", "webhook"]}}
    assert (await client.put("/user/me/preferences", json=prefs, headers=headers)).json() == prefs
    for bad in (
        {"blob": "x" * 10_000_000},  # stored whole and echoed by /user/me before
        {"theme": "a\u0000b"},
        {"theme": "neon"},
        {"notifications": {"info": ["ws", "ws", "ws"]}},
    ):
        response = await client.put("/user/me/preferences", json=bad, headers=headers)
        assert response.status_code == 422, response.text[:200]
        assert response.json()["title"] == "Unprocessable Content"
    assert (await client.get("/user/me", headers=headers)).json()["preferences"] == prefs


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


async def test_a_user_cannot_read_another_users_preferences_or_limits(
    client: httpx.AsyncClient,
) -> None:
    alice = await signed_up(client, "alice2@example.com")
    mallory = await signed_up(client, "mallory@example.com")
    await client.put(
        "/user/me/preferences", json={"notifications": {"info": ["ws"]}}, headers=alice
    )
    await client.put("/user/me/limits", json={"max_order_value": "10"}, headers=alice)

    assert (await client.get("/user/me/preferences", headers=mallory)).json() != {
        "notifications": {"info": ["ws"]}
    }
    assert (await client.get("/user/me/limits", headers=mallory)).json() == {}
    # The public API has no route that takes another user's id.
    me = (await client.get("/user/me", headers=alice)).json()
    assert (
        await client.get(f"/user/internal/users/{me['id']}", headers=mallory)
    ).status_code == 401
