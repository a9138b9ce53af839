"""One JSON log line per request, and settings that refuse placeholder secrets."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.settings import ServiceSettings, normalise_database_url
from tests.servers import app_client
from tests.shared.test_health import make_app


async def test_each_request_logs_one_json_line_with_its_request_id(capsys) -> None:
    app = make_app("market", log_level="INFO")
    async with app_client(app) as client:
        capsys.readouterr()
        response = await client.get("/nowhere", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert response.headers["x-request-id"] == "req-42"
    assert len(requests) == 1
    line = requests[0]
    assert line["request_id"] == "req-42"
    assert line["status"] == 404
    assert line["method"] == "GET"
    assert line["path"] == "/nowhere"
    assert isinstance(line["duration_ms"], float)


async def test_a_request_without_an_id_gets_a_generated_one() -> None:
    async with app_client(make_app("market")) as client:
        first = await client.get("/health")
        second = await client.get("/health")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_production_refuses_the_placeholder_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        ServiceSettings(
            environment="production",
            jwt_secret="change-me-in-production",
            internal_api_token="a-real-internal-token",
        )


def test_production_refuses_the_placeholder_internal_token() -> None:
    with pytest.raises(ValidationError, match="INTERNAL_API_TOKEN"):
        ServiceSettings(
            environment="production",
            jwt_secret="a-real-secret-of-32-characters!!",
            internal_api_token="change-me-internal",
        )


def test_database_urls_in_the_usual_spelling_use_the_asyncpg_driver() -> None:
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert ServiceSettings(database_url="postgresql://u@h:1/d").database_url.startswith(
        "postgresql+asyncpg://"
    )


@pytest.mark.parametrize("secret", ["change-me-in-production", "change-me", "too-short-0123456789"])
def test_a_service_listening_beyond_loopback_refuses_a_placeholder_or_short_jwt_secret(
    secret: str,
) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        ServiceSettings(
            bind_host="0.0.0.0",  # noqa: S104 - the case under test
            jwt_secret=secret,
            internal_api_token="a-real-internal-token",
        )


@pytest.mark.parametrize("token", ["", "change-me-internal"])
def test_a_service_listening_beyond_loopback_refuses_a_missing_internal_token(token: str) -> None:
    with pytest.raises(ValidationError, match="INTERNAL_API_TOKEN"):
        ServiceSettings(
            bind_host="10.1.2.3",
            jwt_secret="a-real-secret-of-32-characters!!",
            internal_api_token=token,
        )


def test_on_loopback_a_service_starts_without_secrets_and_its_internal_token_is_unset() -> None:
    settings = ServiceSettings(jwt_secret="change-me-in-production", internal_api_token="")
    assert not settings.exposed
    assert not settings.internal_token_set


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert ServiceSettings(trusted_proxies="10.0.0.1, 172.16.0.0/12, ::1").trusted_proxies
    with pytest.raises(ValidationError, match="not an address or network"):
        ServiceSettings(trusted_proxies="10.0.0.1, gateway")
