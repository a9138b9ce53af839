import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from analysis_service.backtests.worker import BacktestWorker
from analysis_service.models import Backtest
from shared.backtest import run_backtest
from shared.events import Event, publish
from shared.strategies import create_strategy
from tests.analysis_service.conftest import MARKET_CANDLES, eventually
from tests.factories import create_user
from tests.shared.sample_candles import random_candles, window

C = random_candles(1500, seed=12)
ROWS = C.to_rows()
MA: dict[str, Any] = {"name": "ma_crossover", "params": {"fast": 10, "slow": 30}}


async def finished(client, user, backtest_id):
    async def check():
        body = (await client.get(f"/analysis/backtests/{backtest_id}", headers=user.headers)).json()
        return body if body["status"] in ("done", "failed") else None

    return await eventually(check)


async def test_a_backtest_job_runs_to_the_same_result_as_the_engine(client, user):
    response = await client.post(
        "/analysis/backtests",
        json={
            "strategy": MA,
            "candles": ROWS,
            "initial_capital": "10000",
            "fee": 0.001,
            "slippage": 0.0005,
            "position_size": 1.0,
        },
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    body = await finished(client, user, accepted["id"])
    assert body["status"] == "done", body["error"]
    assert body["progress"] == 1.0
    expected = run_backtest(
        create_strategy("ma_crossover", MA["params"]), C, 10_000, 0.001, 0.0005, 1.0
    )
    result = body["result"]
    assert set(result) == {"metrics", "trades", "equity_curve"}
    assert result["metrics"] == expected.metrics
    assert len(result["trades"]) == len(expected.trades) > 5
    assert result["trades"][0] == expected.trades[0].to_json()
    assert result["equity_curve"] == expected.equity_points()
    assert body["strategy"] == {"name": "ma_crossover", "params": {**MA["params"], "ma": "sma"}}
    assert body["settings"]["initial_capital"] == "10000"
    assert body["start"].startswith("2023-11-14")  # the data range is stored with the job
    listed = (await client.get("/analysis/backtests", headers=user.headers)).json()
    assert [b["id"] for b in listed] == [accepted["id"]]
    assert listed[0]["metrics"]["n_trades"] == expected.metrics["n_trades"]


async def test_candles_are_loaded_from_the_market_for_a_symbol_and_range(client, user, market):
    start = MARKET_CANDLES.timestamp[200]
    end = MARKET_CANDLES.timestamp[1700]
    response = await client.post(
        "/analysis/backtests",
        json={
            "strategy": {
                "name": "rules",
                "params": {"entry": "rsi(14) < 40", "exit": "rsi(14) > 60", "stop_loss": 0.02},
            },
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": int(start) / 1000,
            "end": int(end) / 1000,
            "initial_capital": "5000",
            "fee": 0.002,
        },
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    body = await finished(client, user, response.json()["id"])
    assert body["status"] == "done", body["error"]
    candles = window(MARKET_CANDLES, 200, 1700)
    strategy = create_strategy(
        "rules", {"entry": "rsi(14) < 40", "exit": "rsi(14) > 60", "stop_loss": 0.02}
    )
    expected = run_backtest(strategy, candles, 5000, 0.002)
    assert body["result"]["metrics"] == expected.metrics
    assert body["symbol"] == "BTC/USDT"
    assert body["exchange"] == "sim"
    assert body["timeframe"] == "1h"
    assert {c.url.params["exchange"] for c in market.calls} == {"sim"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"strategy": {"name": "nope"}, "candles": ROWS}, "unknown strategy 'nope'"),
        (
            {
                "strategy": {"name": "ma_crossover", "params": {"fast": 50, "slow": 10}},
                "candles": ROWS,
            },
            "fast must be smaller than slow",
        ),
        (
            {
                "strategy": {"name": "rules", "params": {"entry": "close.__class__"}},
                "candles": ROWS,
            },
            "attribute access is not allowed",
        ),
        ({"strategy": MA, "candles": ROWS, "fee": -0.1}, "greater than or equal to 0"),
        ({"strategy": MA, "candles": ROWS, "position_size": 2}, "less than or equal to 1"),
        ({"strategy": MA, "candles": ROWS, "initial_capital": "-5"}, "greater than 0"),
        ({"strategy": MA, "symbol": "BTC/USDT", "timeframe": "1h"}, "missing: start, end"),
        (
            {"strategy": MA, "symbol": "BTC/USDT", "timeframe": "7x", "start": 0, "end": 100_000},
            "unknown timeframe",
        ),
        (
            {
                "strategy": MA,
                "symbol": "BTC/USDT",
                "timeframe": "1m",
                "start": "2020-01-01",
                "end": "2025-01-01",
            },
            "at most 1000000",
        ),
        ({"strategy": MA, "candles": [ROWS[1], ROWS[0]]}, "strictly increasing"),
    ],
)
async def test_bad_requests_are_422_and_store_nothing(client, user, session, payload, message):
    response = await client.post("/analysis/backtests", json=payload, headers=user.headers)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert await session.scalar(select(func.count()).select_from(Backtest)) == 0


async def test_another_users_backtest_is_not_found(client, user, session, redis):
    response = await client.post(
        "/analysis/backtests", json={"strategy": MA, "candles": ROWS}, headers=user.headers
    )
    other = await create_user(session, redis)
    backtest_id = response.json()["id"]
    assert (
        await client.get(f"/analysis/backtests/{backtest_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.get(f"/analysis/backtests/{uuid.uuid4()}", headers=user.headers)
    ).status_code == 404
    assert (await client.get("/analysis/backtests", headers=other.headers)).json() == []


async def test_a_failing_job_ends_with_a_clear_error(client, user, market):
    start = MARKET_CANDLES.timestamp[-1] + 10 * 3_600_000  # after the last candle: no data
    response = await client.post(
        "/analysis/backtests",
        json={
            "strategy": MA,
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": int(start) / 1000,
            "end": int(start + 100 * 3_600_000) / 1000,
        },
        headers=user.headers,
    )
    body = await finished(client, user, response.json()["id"])
    assert body["status"] == "failed"
    assert "has 0 1h candles of BTC/USDT in that range" in body["error"]
    assert body["result"] is None
    market.down = True
    response = await client.post(
        "/analysis/backtests",
        json={
            "strategy": MA,
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": int(MARKET_CANDLES.timestamp[0]) / 1000,
            "end": int(MARKET_CANDLES.timestamp[500]) / 1000,
        },
        headers=user.headers,
    )
    body = await finished(client, user, response.json()["id"])
    assert body["status"] == "failed"
    assert "market service is unavailable" in body["error"]


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
        parameters=MA["params"],
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
        parameters=MA["params"],
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


async def test_backtests_list_the_same_catalog_as_the_registry(client, user):
    from shared.strategies import catalog

    response = await client.get("/analysis/backtests/strategies", headers=user.headers)
    assert response.json() == catalog()
