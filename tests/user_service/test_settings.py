"""ENCRYPTION_KEY: required in production, validated, and its absence is a clear 503."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.servers import app_client
from tests.user_service.sign_up import signed_up
from user_service.main import create_app
from user_service.settings import UserSettings

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "jwt_secret": "a-real-production-secret-0123456789",
    "internal_api_token": "a-real-internal-token-0123456789",
}


def test_production_refuses_a_missing_encryption_key() -> None:
    with pytest.raises(ValidationError, match="ENCRYPTION_KEY"):
        UserSettings(**PRODUCTION, encryption_key="")


def test_a_malformed_encryption_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="Fernet key"):
        UserSettings(encryption_key="too-short")


async def test_exchange_keys_answer_503_without_an_encryption_key() -> None:
    async with app_client(create_app(UserSettings(encryption_key=""))) as client:
        headers = await signed_up(client, "rita@example.com")
        response = await client.post(
            "/user/me/exchange-keys",
            json={"exchange": "binance", "api_key": "key-0001", "api_secret": "secret-01"},
            headers=headers,
        )
    assert response.status_code == 503
    assert "ENCRYPTION_KEY" in response.json()["detail"]
    assert "retry-after" in response.headers
