"""The backtest worker on its stream: a job a dead replica left is taken over, a job runs
once however often it is delivered, and a job whose stream entry is gone is queued again."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from analysis_service.backtests.worker import BacktestWorker, recover_lock
from analysis_service.models import Backtest
from shared.events import Event, publish
from tests.shared.sample_candles import random_candles

ROWS = random_candles(1500, seed=12).to_rows()
MA: dict[str, Any] = {"strategy": "ma_crossover", "parameters": {"fast": 10, "slow": 30}}


def job(user, **fields: Any) -> Backtest:
    return Backtest(
        user_id=user.id,
        strategy="ma_crossover",
        parameters=MA["parameters"],
        request={"candles": ROWS, "fee": 0.001},
        **{"status": "queued", "progress": 0.0, **fields},
    )


def worker_for(redis, sessionmaker, settings, consumer: str = "worker") -> BacktestWorker:
    # Jobs with their candles in the request: no market service needed.
    return BacktestWorker(redis, sessionmaker, None, settings, consumer=consumer)  # type: ignore[arg-type]


async def test_a_job_left_by_a_dead_replica_is_taken_over(
    settings, sessionmaker, redis, session, user
):
    # The job row and its stream entry, read by a replica that then died (never acked).
    row = job(user, status="running", progress=0.2)
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
    worker = worker_for(redis, sessionmaker, settings, "survivor")
    assert await worker.process_once(block_ms=10) == 0  # not idle long enough yet
    await asyncio.sleep(settings.backtest_claim_idle_ms / 1000 + 0.1)
    assert await worker.process_once(block_ms=10) == 1
    await session.refresh(row)
    assert row.status == "done"
    assert row.metrics is not None
    assert row.metrics["n_trades"] > 0
    assert orjson.loads(row.result or "null")["metrics"] == row.metrics
    pending = await redis.xpending(settings.backtest_stream, settings.backtest_group)
    assert pending["pending"] == 0
    assert await redis.xlen(settings.backtest_stream) == 0  # a finished job's entry goes


async def test_a_finished_job_delivered_again_is_not_rerun(
    settings, sessionmaker, session, user, redis
):
    row = job(user, status="done", progress=1.0, result='{"metrics":{"n_trades":42}}')
    session.add(row)
    await session.commit()
    await worker_for(redis, sessionmaker, settings).execute(row.id)
    await session.refresh(row)
    assert row.result == '{"metrics":{"n_trades":42}}'
    count = await session.scalar(text("SELECT count(*) FROM backtests"))
    assert count == 1


async def test_a_job_another_worker_runs_is_not_run_again(
    settings, sessionmaker, session, user, redis
):
    # Running, with a heartbeat just now: a second delivery of its entry must leave it be.
    row = job(user, status="running", heartbeat_at=datetime.now(UTC))
    session.add(row)
    await session.commit()
    await worker_for(redis, sessionmaker, settings).execute(row.id)
    await session.refresh(row)
    assert (row.status, row.result) == ("running", None)


async def test_a_queued_job_whose_entry_is_gone_is_queued_again_and_runs(
    settings, sessionmaker, session, user, redis
):
    # Queued a while ago; its entry was trimmed (or Redis lost it): nothing would ever run it.
    past = datetime.now(UTC) - timedelta(milliseconds=settings.backtest_claim_idle_ms + 500)
    lost = job(user, created_at=past)
    # Queued as long, but its entry still waits in the stream: not queued a second time.
    waiting = job(user, created_at=past)
    session.add_all([lost, waiting])
    await session.commit()
    await publish(
        redis,
        Event(type="backtest.requested", data={"backtest_id": str(waiting.id)}, source="test"),
        stream=settings.backtest_stream,
    )
    worker = worker_for(redis, sessionmaker, settings)
    await worker.ensure_group()
    assert await worker.recover_lost_jobs() == 1
    assert await redis.xlen(settings.backtest_stream) == 2
    assert await worker.recover_lost_jobs() == 0  # one replica per interval
    await redis.delete(recover_lock(settings.backtest_stream))
    assert await worker.recover_lost_jobs() == 0  # both have an entry now
    while await worker.process_once(block_ms=10):
        pass
    for row in (lost, waiting):
        await session.refresh(row)
        assert row.status == "done", row.error


async def test_a_running_job_of_a_dead_worker_without_an_entry_is_queued_again(
    settings, sessionmaker, session, user, redis
):
    past = datetime.now(UTC) - timedelta(milliseconds=settings.backtest_claim_idle_ms + 500)
    row = job(user, status="running", created_at=past, started_at=past, heartbeat_at=past)
    alive = job(user, status="running", created_at=past, heartbeat_at=datetime.now(UTC))
    session.add_all([row, alive])
    await session.commit()
    worker = worker_for(redis, sessionmaker, settings)
    await worker.ensure_group()
    assert await worker.recover_lost_jobs() == 1  # not the one whose worker beats
    assert await worker.process_once(block_ms=10) == 1
    await session.refresh(row)
    assert row.status == "done", row.error
