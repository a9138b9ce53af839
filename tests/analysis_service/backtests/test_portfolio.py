"""Portfolio backtests through `/analysis/backtests`: several pairs from one capital, the
portfolio's and each pair's metrics, each trade's pair; bad portfolios refused up front."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from analysis_service.models import Backtest
from shared.backtest import run_portfolio
from shared.strategies import create_strategy
from tests.analysis_service.backtests.test_router import finished
from tests.analysis_service.fake_market import HOUR, MARKET_CANDLES, FakeMarket
from tests.shared.sample_candles import random_candles, window

MA: dict[str, Any] = {"strategy": "ma_crossover", "parameters": {"fast": 5, "slow": 20}}
SERIES = {
    "BTC/USDT": random_candles(800, seed=61),
    "ETH/USDT": random_candles(800, seed=62, price=2000.0),
    "SOL/USDT": random_candles(800, seed=63, price=100.0),
}
ETH_1H = random_candles(3000, seed=64, frame_ms=HOUR, start_ms=int(MARKET_CANDLES.timestamp[0]),
                        price=2000.0)  # fmt: skip


class PairMarkets:
    """The fake market service over several pairs (each its own 1h candles)."""

    def __init__(self, markets: dict[str, FakeMarket]) -> None:
        self.markets = markets
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        symbol = request.url.params.get("symbol", "")
        found = self.markets.get(symbol)
        if found is None:
            detail = f"Unknown symbol {symbol!r}."
            return httpx.Response(404, json={"status": 404, "detail": detail})
        # FakeMarket answers for BTC/USDT only: ask it in that name
        params = dict(request.url.params)
        params["symbol"] = "BTC/USDT"
        return found(httpx.Request("GET", request.url.copy_with(params=params)))


async def done(client, user, body):
    response = await client.post("/analysis/backtests", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    job = await finished(client, user, response.json()["id"])
    assert job["status"] == "done", job["error"]
    return job


@pytest.fixture
def market() -> PairMarkets:
    return PairMarkets({"BTC/USDT": FakeMarket(MARKET_CANDLES), "ETH/USDT": FakeMarket(ETH_1H)})


async def test_a_portfolio_job_gives_the_engines_portfolio_and_pair_results(client, user):
    body = {
        **MA,
        "candles": {pair: c.to_rows() for pair, c in SERIES.items()},
        "max_open_positions": 2,
        "initial_capital": "5000",
        "fee": 0.002,
        "take_profit": 0.01,
    }
    job = await done(client, user, body)
    expected = run_portfolio(
        create_strategy("ma_crossover", MA["parameters"]),
        SERIES,
        5000,
        0.002,
        max_open_positions=2,
        take_profit=0.01,
    )
    result = job["result"]
    assert set(result) == {"metrics", "pair_metrics", "trades", "equity_curve"}
    assert result["metrics"] == expected.metrics
    assert result["pair_metrics"] == expected.pair_metrics
    assert list(result["pair_metrics"]) == list(SERIES)
    assert len(result["trades"]) == len(expected.trades) > 10
    assert result["trades"][3] == expected.trades[3].to_json()
    assert {t["pair"] for t in result["trades"]} == set(SERIES)
    assert result["metrics"]["entries_skipped"] > 0
    assert job["pairs"] == list(SERIES)
    assert job["symbol"] is None
    assert job["settings"]["max_open_positions"] == 2
    assert job["settings"]["position_size"] == 0.5  # 1 / max_open_positions
    listed = (await client.get("/analysis/backtests", headers=user.headers)).json()["items"]
    assert listed[0]["pairs"] == list(SERIES)
    assert listed[0]["metrics"]["n_trades"] == expected.metrics["n_trades"]


async def test_a_portfolios_pairs_are_loaded_from_the_market_one_by_one(client, user, market):
    start, end = MARKET_CANDLES.timestamp[100], MARKET_CANDLES.timestamp[1600]
    body = {
        **MA,
        "exchange": "sim",
        "pairs": ["ETH/USDT", "BTC/USDT"],
        "timeframe": "1h",
        "start": int(start) / 1000,
        "end": int(end) / 1000,
        "stake_amount": "2500",
        "stop_loss": 0.02,
    }
    job = await done(client, user, body)
    expected = run_portfolio(
        create_strategy("ma_crossover", MA["parameters"]),
        {"ETH/USDT": window(ETH_1H, 100, 1600), "BTC/USDT": window(MARKET_CANDLES, 100, 1600)},
        stake_amount=2500,
        stop_loss=0.02,
    )
    assert job["result"]["metrics"] == expected.metrics
    assert job["result"]["pair_metrics"] == expected.pair_metrics
    assert job["settings"]["stake_amount"] == "2500"
    assert job["settings"]["position_size"] is None
    assert [c.url.params["symbol"] for c in market.calls] == ["ETH/USDT", "BTC/USDT"]
    # a pair the market does not know fails the job with its name
    response = await client.post(
        "/analysis/backtests",
        json={**body, "pairs": ["BTC/USDT", "DOGE/USDT"]},
        headers=user.headers,
    )
    job = await finished(client, user, response.json()["id"])
    assert job["status"] == "failed"
    assert "DOGE/USDT" in job["error"]


ROWS = SERIES["BTC/USDT"].to_rows()
TWO = {"BTC/USDT": ROWS, "ETH/USDT": SERIES["ETH/USDT"].to_rows()}
RANGE = {"exchange": "sim", "timeframe": "1h", "start": "2024-01-01", "end": "2024-02-01"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**MA, **RANGE, "symbol": "BTC/USDT", "pairs": ["ETH/USDT"]}, "not both"),
        ({**MA, **RANGE, "pairs": ["BTC/USDT"], "max_open_positions": 2}, "more than the pairs"),
        ({**MA, **RANGE, "pairs": ["BTC/USDT", "BTC/USDT"]}, "a pair is listed twice"),
        ({**MA, **RANGE, "pairs": ["BTC/USDT"], "stake_amount": "100", "position_size": 0.5},
         "stake_amount or position_size, not both"),
        ({**MA, **RANGE, "symbol": "BTC/USDT", "max_open_positions": 1}, "need a portfolio"),
        ({**MA, **RANGE, "pairs": []}, "at least 1 item"),
        ({**MA, **RANGE, "pairs": ["btc-usdt"]}, "should match pattern"),
        ({**MA, "candles": ROWS, "pairs": ["BTC/USDT"]}, "an object of pair -> rows"),
        ({**MA, "candles": TWO, "pairs": ["ETH/USDT", "BTC/USDT"]}, "in the same order"),
        ({**MA, "candles": {**TWO, "ETH/USDT": [ROWS[1], ROWS[0]]}},
         "ETH/USDT: candle timestamps must be strictly increasing"),
        ({**MA, "candles": {**TWO, "ETH/USDT": ROWS[:1]}}, "ETH/USDT: a backtest needs at least 2"),
        ({**MA, "candles": {}}, "candles holds no pair"),
        ({**MA, "exchange": "sim", "timeframe": "1m", "start": "2024-01-01",
          "end": "2024-03-01", "pairs": [f"P{i}/USDT" for i in range(20)]},
         "for each of 20 pairs"),
    ],
)  # fmt: skip
async def test_bad_portfolio_requests_are_422_and_store_nothing(
    client, user, session, payload, message
):
    response = await client.post("/analysis/backtests", json=payload, headers=user.headers)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert await session.scalar(select(func.count()).select_from(Backtest)) == 0
