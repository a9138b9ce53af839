"""The backtest worker on its stream: a job a dead replica left is taken over, a finished
job delivered again is not run twice."""

import asyncio
from typing import Any

from sqlalchemy import text

from analysis_service.backtests.worker import BacktestWorker
from analysis_service.models import Backtest
from shared.events import Event, publish
from tests.shared.sample_candles import random_candles

ROWS = random_candles(1500, seed=12).to_rows()
MA: dict[str, Any] = {"strategy": "ma_crossover", "parameters": {"fast": 10, "slow": 30}}


async def test_a_job_left_by_a_dead_replica_is_taken_over(
    settings, market, sessionmaker, redis, session, user
):
    import httpx

    from analysis_service.market import MarketClient
    from shared.service_client import ServiceClient

    # The job row and its stream entry, read by a replica that then died (never acked).
    row = Backtest(
        user_id=user.id,
        status="running",
        progress=0.2,
        strategy="ma_crossover",
        parameters=MA["parameters"],
        request={"candles": ROWS, "fee": 0.001},
    )
    session.add(row)
    await session.commit()
    await publish(
        redis,
        Event(type="backtest.requested", data={"backtest_id": str(row.id)}, source="test"),
        stream=settings.backtest_stream,
    )
    await redis.xgroup_create(settings.backtest_stream, settings.backtest_group, id="0")
    await redis.xreadgroup(
        settings.backtest_group, "dead-replica", {settings.backtest_stream: ">"}, count=1
    )
    async with ServiceClient(
        "market", "http://market.test", caller="analysis", transport=httpx.MockTransport(market)
    ) as http:
        worker = BacktestWorker(
            redis,
            sessionmaker,
            MarketClient(http),
            settings,
            consumer="survivor",
        )
        assert await worker.process_once(block_ms=10) == 0  # not idle long enough yet
        await asyncio.sleep(settings.backtest_claim_idle_ms / 1000 + 0.1)
        assert await worker.process_once(block_ms=10) == 1
    await session.refresh(row)
    assert row.status == "done"
    assert row.result is not None
    assert row.result["metrics"]["n_trades"] > 0
    pending = await redis.xpending(settings.backtest_stream, settings.backtest_group)
    assert pending["pending"] == 0


async def test_a_finished_job_delivered_again_is_not_rerun(
    settings, sessionmaker, session, user, redis
):
    row = Backtest(
        user_id=user.id,
        status="done",
        progress=1.0,
        strategy="ma_crossover",
        parameters=MA["parameters"],
        request={"candles": ROWS},
        result={"metrics": {"n_trades": 42}},
    )
    session.add(row)
    await session.commit()
    worker = BacktestWorker(redis, sessionmaker, None, settings)  # type: ignore[arg-type]
    await worker.execute(row.id)
    await session.refresh(row)
    assert row.result == {"metrics": {"n_trades": 42}}
    count = await session.scalar(text("SELECT count(*) FROM backtests"))
    assert count == 1
