"""A backtest's result as the API serves it: the metrics, every trade as ``Trade.to_json``
writes it, the equity curve thinned; times as ``datetime.isoformat`` writes them."""

from datetime import UTC, datetime

import numpy as np
import orjson

from shared.backtest import run_backtest
from shared.backtest.report import iso_times, result_json
from shared.strategies import create_strategy
from tests.shared.sample_candles import random_candles


def test_the_result_json_holds_every_trade_and_the_thinned_curve() -> None:
    c = random_candles(3000, seed=5)
    r = run_backtest(
        create_strategy("ma_crossover", {"fast": 5, "slow": 20}),
        c,
        10_000,
        0.001,
        0.0005,
        1.0,
        stop_loss=0.01,
        take_profit=0.02,
    )
    body = orjson.loads(result_json(r, max_points=100))
    assert set(body) == {"metrics", "trades", "equity_curve"}
    assert body["metrics"] == r.metrics
    assert len(r.trades) > 20
    assert {t["exit_reason"] for t in body["trades"]} >= {"signal", "stop_loss", "take_profit"}
    assert body["trades"] == [trade.to_json() for trade in r.trades]
    assert body["equity_curve"] == r.equity_points(100)
    assert len(body["equity_curve"]) <= 101
    assert body["equity_curve"][-1][1] == r.final_equity


def test_times_are_written_as_isoformat_writes_them() -> None:
    times = np.array([0, 1, 999, 1000, 1_700_000_000_123, 4_102_444_799_999], dtype=np.int64)
    assert iso_times(times) == [
        datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
        for ms in times
    ]
    assert iso_times(times)[:2] == ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00.001000Z"]
