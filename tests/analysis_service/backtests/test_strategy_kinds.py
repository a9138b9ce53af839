"""Backtest jobs of DataFrame strategies from the strategies folder and of rules reading
higher timeframes: the engine's result, and 422s for what cannot run."""

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import shared.strategies as registry
from analysis_service.models import Backtest
from shared.backtest import run_backtest
from shared.strategies import create_strategy
from tests.analysis_service.backtests.test_router import finished
from tests.shared.sample_candles import random_candles

EXAMPLES = Path(registry.__file__).parent / "examples"
C = random_candles(1200, seed=4, start_ms=1_735_689_600_000, frame_ms=3_600_000)
PORTED: dict[str, Any] = {"strategy": "RsiTrendPullback", "parameters": {"buy_rsi": 45}}


@pytest.fixture(autouse=True)
def examples_installed(monkeypatch):
    monkeypatch.setenv("STRATEGIES_DIR", str(EXAMPLES))
    registry.reload_plugins()
    yield
    monkeypatch.delenv("STRATEGIES_DIR")
    registry.reload_plugins()


async def test_a_dataframe_strategy_reading_four_hours_backtests_like_the_engine(client, user):
    response = await client.post(
        "/analysis/backtests", json={**PORTED, "candles": C.to_rows()}, headers=user.headers
    )
    assert response.status_code == 202, response.text
    body = await finished(client, user, response.json()["id"])
    assert body["status"] == "done", body["error"]
    expected = run_backtest(create_strategy(PORTED["strategy"], PORTED["parameters"]), C)
    assert body["result"]["metrics"] == expected.metrics
    assert expected.metrics["n_trades"] > 3
    assert body["parameters"] == {"buy_rsi": 45, "sell_rsi": 65, "trend_period": 12}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**PORTED, "parameters": {"buy_rsi": 1}}, "buy_rsi: Input should be greater than"),
        ({**PORTED, "parameters": {"sell": 1}}, "sell: Extra inputs are not permitted"),
        (
            {"strategy": "rules", "parameters": {"entry": 'rsi(14, tf="30m") < 30'}},
            "not a whole multiple of the trading timeframe (60 min)",
        ),
    ],
)
async def test_bad_parameters_or_timeframes_are_422_and_store_nothing(
    client, user, session, payload, message
):
    stored = {"symbol": "BTC/USDT", "timeframe": "1h", "start": "2025-01-01", "end": "2025-02-01"}
    for source in ({"candles": C.to_rows()}, stored):
        response = await client.post(
            "/analysis/backtests", json={**payload, **source}, headers=user.headers
        )
        assert response.status_code == 422, response.text
        assert message in response.text
    assert await session.scalar(select(func.count()).select_from(Backtest)) == 0
