"""Signing users up and in through the user service's own API, for its tests."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "correct horse 42 battery"


async def register(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Any:
    response = await client.post("/user/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Any:
    response = await client.post("/user/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def signed_up(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Register ``email``, log it in and return its bearer header."""
    await register(client, email)
    return bearer(await login(client, email))
