from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.servers import app_client
from user_service.main import create_app
from user_service.settings import UserSettings

PASSWORD = "correct horse 42 battery"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(UserSettings())) as client:
        yield client


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
    await register(client, email)
    return bearer(await login(client, email))
