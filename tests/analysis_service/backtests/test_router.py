"""`/analysis/backtests`: jobs queued, run by the worker to the engine's result, each
user's own; bad requests refused before anything is stored."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from analysis_service.models import Backtest
from shared.backtest import run_backtest
from shared.strategies import create_strategy
from tests.analysis_service.fake_market import MARKET_CANDLES
from tests.factories import create_user
from tests.shared.sample_candles import random_candles, window
from tests.waiting import eventually

C = random_candles(1500, seed=12)
ROWS = C.to_rows()
MA: dict[str, Any] = {"strategy": "ma_crossover", "parameters": {"fast": 10, "slow": 30}}


async def finished(client, user, backtest_id):
    async def check():
        body = (await client.get(f"/analysis/backtests/{backtest_id}", headers=user.headers)).json()
        return body if body["status"] in ("done", "failed") else None

    return await eventually(check)


async def test_a_backtest_job_runs_to_the_same_result_as_the_engine(client, user):
    response = await client.post(
        "/analysis/backtests",
        json={
            **MA,
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
        create_strategy("ma_crossover", MA["parameters"]), C, 10_000, 0.001, 0.0005, 1.0
    )
    result = body["result"]
    assert set(result) == {"metrics", "trades", "equity_curve"}
    assert result["metrics"] == expected.metrics
    assert len(result["trades"]) == len(expected.trades) > 5
    assert result["trades"][0] == expected.trades[0].to_json()
    assert result["equity_curve"] == expected.equity_points()
    assert body["strategy"] == "ma_crossover"
    assert body["parameters"] == {**MA["parameters"], "ma": "sma"}
    assert body["settings"]["initial_capital"] == "10000"
    assert body["start"].startswith("2023-11-14")  # the data range is stored with the job
    listed = (await client.get("/analysis/backtests", headers=user.headers)).json()["items"]
    assert [b["id"] for b in listed] == [accepted["id"]]
    assert listed[0]["metrics"]["n_trades"] == expected.metrics["n_trades"]


async def test_candles_are_loaded_from_the_market_for_a_symbol_and_range(client, user, market):
    start = MARKET_CANDLES.timestamp[200]
    end = MARKET_CANDLES.timestamp[1700]
    response = await client.post(
        "/analysis/backtests",
        json={
            "strategy": "rules",
            "parameters": {"entry": "rsi(14) < 40", "exit": "rsi(14) > 60", "stop_loss": 0.02},
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
        ({"strategy": "nope", "candles": ROWS}, "unknown strategy 'nope'"),
        (
            {
                "strategy": "ma_crossover",
                "parameters": {"fast": 50, "slow": 10},
                "candles": ROWS,
            },
            "fast must be smaller than slow",
        ),
        (
            {"strategy": "rules", "parameters": {"entry": "close.__class__"}, "candles": ROWS},
            "attribute access is not allowed",
        ),
        ({"strategy": "ma\u0000x", "candles": ROWS}, "should match pattern"),
        (
            {"strategy": "rules", "parameters": {"entry": "a\u0000b"}, "candles": ROWS},
            "must not contain NUL",
        ),
        (
            {
                **MA,
                "symbol": "BTC/USDT",
                "timeframe": "1h",
                "start": "2024-01-01",
                "end": "2099-01-01",
            },
            "end lies in the future",
        ),
        ({**MA, "candles": ROWS, "fee": -0.1}, "greater than or equal to 0"),
        ({**MA, "candles": ROWS, "position_size": 2}, "less than or equal to 1"),
        ({**MA, "candles": ROWS, "initial_capital": "-5"}, "greater than 0"),
        ({**MA, "symbol": "BTC/USDT", "timeframe": "1h"}, "missing: start, end"),
        (
            {
                **MA,
                "symbol": "BTC/USDT",
                "timeframe": "7x",
                "start": "2024-01-01",
                "end": "2024-02-01",
            },
            "unknown timeframe",
        ),
        (
            {
                **MA,
                "symbol": "BTC/USDT",
                "timeframe": "1m",
                "start": "2020-01-01",
                "end": "2025-01-01",
            },
            "at most 1000000",
        ),
        ({**MA, "candles": [ROWS[1], ROWS[0]]}, "strictly increasing"),
    ],
)
async def test_bad_requests_are_422_and_store_nothing(client, user, session, payload, message):
    response = await client.post("/analysis/backtests", json=payload, headers=user.headers)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert await session.scalar(select(func.count()).select_from(Backtest)) == 0


async def test_another_users_backtest_is_not_found(client, user, session, redis):
    response = await client.post(
        "/analysis/backtests", json={**MA, "candles": ROWS}, headers=user.headers
    )
    other = await create_user(session, redis)
    backtest_id = response.json()["id"]
    assert (
        await client.get(f"/analysis/backtests/{backtest_id}", headers=other.headers)
    ).status_code == 404
    assert (
        await client.get(f"/analysis/backtests/{uuid.uuid4()}", headers=user.headers)
    ).status_code == 404
    assert (await client.get("/analysis/backtests", headers=other.headers)).json()["items"] == []


async def test_the_list_is_paged_newest_first(client, user, session):
    rows = [
        Backtest(
            user_id=user.id,
            status="done",
            strategy="ma_crossover",
            parameters=MA["parameters"],
            request={},
            result=f'{{"metrics":{{"n_trades":{n}}},"trades":[],"equity_curve":[]}}',
            metrics={"n_trades": n},
            created_at=datetime(2026, 1, 1 + n, tzinfo=UTC),
        )
        for n in range(3)
    ]
    session.add_all(rows)
    await session.commit()
    pages = [
        (
            await client.get(
                "/analysis/backtests", params={"limit": 2, "offset": offset}, headers=user.headers
            )
        ).json()
        for offset in (0, 2)
    ]
    assert [[b["metrics"]["n_trades"] for b in page["items"]] for page in pages] == [[2, 1], [0]]
    assert [page["total"] for page in pages] == [3, 3]
    one = (await client.get(f"/analysis/backtests/{rows[1].id}", headers=user.headers)).json()
    assert one["result"] == {"metrics": {"n_trades": 1}, "trades": [], "equity_curve": []}


async def test_a_failing_job_ends_with_a_clear_error(client, user, market):
    start = MARKET_CANDLES.timestamp[-1] + 10 * 3_600_000  # after the last candle: no data
    response = await client.post(
        "/analysis/backtests",
        json={
            **MA,
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
            **MA,
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


async def test_backtests_list_the_same_catalog_as_the_registry(client, user):
    from shared.strategies import catalog

    response = await client.get("/analysis/backtests/strategies", headers=user.headers)
    assert response.json() == {
        "items": catalog(),
        "total": len(catalog()),
        "limit": 50,
        "offset": 0,
    }
