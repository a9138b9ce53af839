"""Every HTTP route of every service refuses a query parameter it does not declare, with
the same 422 problem; the check runs before authentication, so no token is needed here."""

from __future__ import annotations

import importlib
import re
import uuid

import httpx
import pytest

SERVICES = [
    "gateway",
    "market_service",
    "user_service",
    "trading_engine",
    "analysis_service",
    "notification_service",
]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_refuses_an_unknown_query_parameter(
    service: str, service_env: dict[str, str]
) -> None:
    app = importlib.import_module(f"{service}.main").create_app()
    paths = app.openapi()["paths"]
    assert paths, service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path, operations in paths.items():
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            for method in operations:
                response = await client.request(method.upper(), url, params={"zz_typo": "1"})
                assert response.status_code == 422, (method, path, response.text)
                problem = response.json()
                assert problem["title"] == "Unprocessable Content"
                assert problem["errors"][0]["loc"] == ["query", "zz_typo"], (method, path)
