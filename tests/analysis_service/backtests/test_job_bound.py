"""Each user's bound on backtests queued or running: counted in PostgreSQL, so it holds
across replicas and under concurrent requests; one more is a 429 that says why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from analysis_service.main import create_app
from analysis_service.models import Backtest
from analysis_service.settings import AnalysisSettings
from tests.factories import create_user
from tests.servers import app_client
from tests.shared.sample_candles import random_candles

ROWS = random_candles(200, seed=3).to_rows()
JOB: dict[str, Any] = {
    "strategy": "ma_crossover",
    "parameters": {"fast": 5, "slow": 20},
    "candles": ROWS,
}


@pytest.fixture
async def replicas(
    service_env: dict[str, str], market: Any
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two replicas of the analysis service on one database, with no worker running, so
    accepted jobs stay queued."""
    settings = AnalysisSettings(
        market_service_urls="http://market.test",
        backtest_workers=0,
        backtest_max_jobs_per_user=2,
        backtest_busy_retry_after_s=17,
    )
    async with (
        app_client(create_app(settings, market_transport=httpx.MockTransport(market))) as one,
        app_client(create_app(settings, market_transport=httpx.MockTransport(market))) as two,
    ):
        yield [one, two]


async def test_concurrent_requests_on_two_replicas_accept_only_the_bound(
    replicas, user, session, redis
):
    responses = await asyncio.gather(
        *(
            replicas[i % 2].post("/analysis/backtests", json=JOB, headers=user.headers)
            for i in range(6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 202, 429, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "17"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "2 backtests queued or running" in refused.json()["detail"]
    count = select(func.count()).select_from(Backtest).where(Backtest.user_id == user.id)
    assert await session.scalar(count) == 2

    other = await create_user(session, redis)  # the bound is per user
    accepted = await replicas[1].post("/analysis/backtests", json=JOB, headers=other.headers)
    assert accepted.status_code == 202


async def test_a_finished_job_frees_its_place(replicas, user, session):
    for _ in range(2):
        response = await replicas[0].post("/analysis/backtests", json=JOB, headers=user.headers)
        assert response.status_code == 202
    assert (
        await replicas[1].post("/analysis/backtests", json=JOB, headers=user.headers)
    ).status_code == 429
    first = await session.scalar(select(Backtest.id).where(Backtest.user_id == user.id).limit(1))
    await session.execute(update(Backtest).where(Backtest.id == first).values(status="failed"))
    await session.commit()
    response = await replicas[1].post("/analysis/backtests", json=JOB, headers=user.headers)
    assert response.status_code == 202, response.text
    listed = (await replicas[0].get("/analysis/backtests", headers=user.headers)).json()["items"]
    assert [(b["status"], b["metrics"]) for b in listed] == [
        ("queued", None),
        ("queued", None),
        ("failed", None),
    ]
