"""The shared constrained types, the paging envelope and the refusal of unknown query
parameters, on a small app assembled the way every service is (create_service_app)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Query
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.app import create_service_app
from shared.paging import Page, PageParams, page_of, paging
from shared.settings import ServiceSettings
from shared.strict_query import StrictQueryRoute
from shared.validation import JsonObject, Name, TimestampMs, Url, UtcDatetime

router = APIRouter(route_class=StrictQueryRoute)


class Body(BaseModel):
    name: Name
    parameters: JsonObject = {}


@router.get("/things", response_model=Page[int])
async def things(
    page: Annotated[PageParams, paging(10, 100)],
    since: Annotated[TimestampMs | None, Query()] = None,
) -> dict[str, Any]:
    return page_of(list(range(25)), page)


@router.post("/things")
async def add_thing(body: Body) -> dict[str, Any]:
    return body.model_dump()


@pytest.fixture
async def client(service_env: dict[str, str]):
    app = create_service_app(ServiceSettings(), title="t", routers=[router], use_database=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_a_page_says_what_it_holds(client: httpx.AsyncClient) -> None:
    body = (await client.get("/things", params={"limit": 5, "offset": 20})).json()
    assert body == {"items": [20, 21, 22, 23, 24], "total": 25, "limit": 5, "offset": 20}


@pytest.mark.parametrize(
    "query",
    [
        {"offset": "9223372036854775808"},
        {"offset": "-1"},
        {"limit": "0"},
        {"limit": "101"},
        {"since": "253402300800000"},
        {"since": "99999999999999999999"},
    ],
)
async def test_out_of_range_numbers_are_422_problems(
    client: httpx.AsyncClient, query: dict[str, str]
) -> None:
    response = await client.get("/things", params=query)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["title"] == "Unprocessable Content"
    assert problem["errors"][0]["loc"] == ["query", next(iter(query))]


async def test_an_unknown_query_parameter_is_refused_and_named(client: httpx.AsyncClient) -> None:
    response = await client.get("/things", params={"limit": 3, "depth": 3})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "depth"]
    assert "limit, offset, since" in error["msg"]
    # Declared ones, and a request without any, pass.
    assert (await client.get("/things", params={"since": "1704067200000"})).status_code == 200
    assert (await client.get("/things")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\u0000b"},
        {"name": "line\nbreak"},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "parameters": {"a": "b\u0000"}},
        {"name": "ok", "parameters": {"a\u0000": 1}},
        {"name": "ok", "parameters": {"big": 2**64}},
        {"name": "ok", "parameters": {"long": "x" * 20_000}},
        {"name": "ok", "parameters": {"deep": [[[[[[[[[[1]]]]]]]]]]}},
    ],
)
async def test_text_and_json_that_postgresql_would_refuse_are_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/things", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["title"] == "Unprocessable Content"


async def test_ordinary_text_and_json_pass(client: httpx.AsyncClient) -> None:
    body = {"name": "Fast crossover ✓", "parameters": {"fast": 10, "ma": "sma", "x": [1.5]}}
    response = await client.post("/things", json=body)
    assert response.status_code == 200
    assert response.json() == body


def test_times_are_utc_and_bounded() -> None:
    adapter = TypeAdapter(UtcDatetime)
    assert adapter.validate_python("2024-01-01T00:00:00").isoformat() == "2024-01-01T00:00:00+00:00"
    assert adapter.validate_python("2024-01-01T02:00:00+02:00").hour == 0
    for bad in ("1970-01-01", "9999-12-31T23:59:59+00:00"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_a_url_has_no_spaces_or_controls() -> None:
    adapter = TypeAdapter(Url)
    assert adapter.validate_python("  https://example.com/hook  ") == "https://example.com/hook"
    for bad in ("https://exa mple.com", "https://example.com/\u0000", "http://"):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
