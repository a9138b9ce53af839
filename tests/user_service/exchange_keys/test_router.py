"""`/user/me/exchange-keys`: encrypted at rest, shown masked, each user's own."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.user_service.sign_up import signed_up


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
    assert [k["id"] for k in listed.json()["items"]] == [body["id"]]
    assert listed.json()["total"] == 1
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
    assert (await client.get("/user/me/exchange-keys", headers=headers)).json()["items"] == []


async def test_a_user_cannot_list_or_delete_another_users_exchange_keys(
    client: httpx.AsyncClient,
) -> None:
    alice = await signed_up(client, "alice2@example.com")
    mallory = await signed_up(client, "mallory@example.com")
    key = (
        await client.post(
            "/user/me/exchange-keys",
            json={"exchange": "gate", "api_key": "alice-key-0001", "api_secret": "alice-secret"},
            headers=alice,
        )
    ).json()

    assert (await client.get("/user/me/exchange-keys", headers=mallory)).json()["items"] == []
    stolen = await client.delete(f"/user/me/exchange-keys/{key['id']}", headers=mallory)
    assert stolen.status_code == 404
    still = await client.get("/user/me/exchange-keys", headers=alice)
    assert [k["id"] for k in still.json()["items"]] == [key["id"]]
