"""`/user/internal`, for other services only: X-Internal-Token required; decrypted keys."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.servers import app_client
from tests.stores import TEST_INTERNAL_TOKEN
from tests.user_service.sign_up import register, signed_up
from user_service.main import create_app
from user_service.settings import UserSettings

INTERNAL = {"X-Internal-Token": TEST_INTERNAL_TOKEN}


async def test_internal_user_view_needs_the_internal_token(client: httpx.AsyncClient) -> None:
    user = await register(client, "olga@example.com")
    path = f"/user/internal/users/{user['id']}"
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers={"X-Internal-Token": "guess"})).status_code == 401
    response = await client.get(path, headers=INTERNAL)
    assert response.status_code == 200
    assert response.json() == {
        "id": user["id"],
        "email": "olga@example.com",
        "permissions": ["trade:paper"],
        "trading_limits": {},
        "preferences": {},
    }
    unknown = await client.get(f"/user/internal/users/{uuid.uuid4()}", headers=INTERNAL)
    assert unknown.status_code == 404


async def test_internal_exchange_key_is_decrypted_and_404_when_absent(
    client: httpx.AsyncClient,
) -> None:
    headers = await signed_up(client, "peggy@example.com")
    me = (await client.get("/user/me", headers=headers)).json()
    await client.post(
        "/user/me/exchange-keys",
        json={"exchange": "mexc", "api_key": "peggy-key-4321", "api_secret": "peggy-secret"},
        headers=headers,
    )
    path = f"/user/internal/users/{me['id']}/exchange-keys"
    got = await client.get(f"{path}/mexc", headers=INTERNAL)
    assert got.status_code == 200
    assert got.json() == {
        "exchange": "mexc",
        "label": "default",
        "api_key": "peggy-key-4321",
        "api_secret": "peggy-secret",
        "passphrase": None,
    }
    assert (await client.get(f"{path}/binance", headers=INTERNAL)).status_code == 404
    assert (await client.get(f"{path}/mexc")).status_code == 401


async def test_granting_live_trading_shows_in_tokens_after_refresh(
    client: httpx.AsyncClient,
) -> None:
    user = await register(client, "quinn@example.com")
    tokens = (
        await client.post(
            "/user/auth/login",
            json={"email": "quinn@example.com", "password": "correct horse 42 battery"},
        )
    ).json()
    granted = await client.put(
        f"/user/internal/users/{user['id']}/permissions",
        json={"permissions": ["trade:live"]},
        headers=INTERNAL,
    )
    assert granted.json()["permissions"] == ["trade:live", "trade:paper"]
    new = (
        await client.post("/user/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    import jwt

    assert jwt.decode(new["access_token"], options={"verify_signature": False})["perms"] == [
        "trade:live",
        "trade:paper",
    ]
    bogus = await client.put(
        f"/user/internal/users/{user['id']}/permissions",
        json={"permissions": ["admin"]},
        headers=INTERNAL,
    )
    assert bogus.status_code == 422


@pytest.mark.parametrize("configured", ["", "change-me-internal"])
async def test_without_a_real_internal_token_the_internal_routes_refuse_everyone(
    configured: str,
) -> None:
    async with app_client(create_app(UserSettings(internal_api_token=configured))) as client:
        user = await register(client, "mallory-target@example.com")
        path = f"/user/internal/users/{user['id']}/exchange-keys/binance"
        for token in ("", "change-me-internal", configured):
            refused = await client.get(path, headers={"X-Internal-Token": token})
            assert refused.status_code == 401, token
