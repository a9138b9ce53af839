"""Fixtures of the user service tests: the app in-process (ASGI, lifespan running)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.servers import app_client
from user_service.main import create_app
from user_service.settings import UserSettings


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(UserSettings())) as client:
        yield client
