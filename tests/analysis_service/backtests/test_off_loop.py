"""A backtest's CPU work runs off the event loop: while the engine is inside a job, the
same process still answers requests."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from shared.candles import Candles
from shared.strategies import create_strategy
from tests.analysis_service.backtests.test_router import finished
from tests.shared.sample_candles import random_candles

ROWS = random_candles(500, seed=4).to_rows()


class HeldStrategy:
    """A real strategy whose ``signals`` waits, inside the engine, until released."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def signals(self, candles: Candles) -> Any:
        self.entered.set()
        # Bounded: a job run on the event loop would block the test that releases it, and
        # time out here instead of hanging.
        self.released_in_time = self.release.wait(timeout=20)
        return self.inner.signals(candles)


async def test_the_service_answers_while_the_engine_is_inside_a_job(client, user, monkeypatch):
    held = HeldStrategy(create_strategy("ma_crossover", {"fast": 5, "slow": 20}))
    monkeypatch.setattr(
        "analysis_service.backtests.worker.build_strategy", lambda name, params: held
    )
    response = await client.post(
        "/analysis/backtests",
        json={"strategy": "ma_crossover", "candles": ROWS},
        headers=user.headers,
    )
    job = response.json()["id"]
    assert await asyncio.to_thread(held.entered.wait, 30)
    try:
        health = await client.get("/health")
        status = await client.get(f"/analysis/backtests/{job}", headers=user.headers)
        assert health.status_code == 200
        assert status.json()["status"] == "running"
    finally:
        held.release.set()
    body = await finished(client, user, job)
    assert body["status"] == "done", body["error"]
    assert held.released_in_time  # the requests were answered while the engine waited
