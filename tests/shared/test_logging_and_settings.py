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
        ServiceSettings(environment="production", jwt_secret="a-real-secret-of-32-characters!!")


def test_database_urls_in_the_usual_spelling_use_the_asyncpg_driver() -> None:
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert ServiceSettings(database_url="postgresql://u@h:1/d").database_url.startswith(
        "postgresql+asyncpg://"
    )
