"""The request's unit of work: committed before the response, rolled back on error."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import text

from shared.app import create_service_app
from shared.deps import SessionDep
from shared.errors import NotFound
from shared.settings import ServiceSettings
from tests.servers import app_client

router = APIRouter()


@router.post("/pairs/{symbol}", status_code=201)
async def add_pair(symbol: str, session: SessionDep) -> dict[str, str]:
    # No flush: a duplicate key only surfaces at commit time.
    await session.execute(
        text("INSERT INTO trading_pairs (symbol, base, exchange) VALUES (:s, 'X', 'test')"),
        {"s": symbol},
    )
    return {"symbol": symbol}


@router.post("/pairs-then-fail/{symbol}")
async def add_then_fail(symbol: str, session: SessionDep) -> None:
    await session.execute(
        text("INSERT INTO trading_pairs (symbol, base, exchange) VALUES (:s, 'X', 'test')"),
        {"s": symbol},
    )
    raise NotFound(f"nothing called {symbol}")


def make_app():
    return create_service_app(ServiceSettings(), title="TradeBot test", routers=[router])


async def count(session) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM trading_pairs")) or 0)


async def test_a_commit_that_fails_is_a_409_problem_not_a_success(session) -> None:
    symbol = f"S{uuid.uuid4().hex[:6]}"
    async with app_client(make_app()) as client:
        first = await client.post(f"/pairs/{symbol}")
        second = await client.post(f"/pairs/{symbol}")
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert await count(session) == 1


async def test_an_error_in_the_route_rolls_back_its_writes(session) -> None:
    async with app_client(make_app()) as client:
        response = await client.post("/pairs-then-fail/ABC")
    assert response.status_code == 404
    assert response.json()["detail"] == "nothing called ABC"
    assert await count(session) == 0
