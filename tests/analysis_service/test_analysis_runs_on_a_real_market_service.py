"""The analysis service against the real market service (sim exchange) on a real uvicorn
server: candles travel over HTTP, and a backtest of a sim range equals the engine run on
the same sim path generated locally (what `tradebot backtest --exchange sim` uses)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from analysis_service.main import create_app
from analysis_service.settings import AnalysisSettings
from market_service.main import create_app as create_market_app
from market_service.settings import MarketSettings
from shared.backtest import run_backtest
from shared.strategies import create_strategy
from tests.servers import UvicornThread, app_client
from tests.waiting import eventually
from tradebot.backtest import parse_time, sim_candles

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def market_service(service_env: dict[str, str]) -> Iterator[str]:
    server = UvicornThread(create_market_app(MarketSettings(log_json=False))).start()
    yield server.url
    server.stop()


@pytest.fixture
async def real_client(market_service: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = AnalysisSettings(market_service_urls=market_service, market_page_limit=1000)
    async with app_client(create_app(settings)) as http:
        yield http


async def test_a_backtest_on_sim_history_equals_the_locally_generated_path(real_client, user):
    start, end = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"
    params = {"fast": 8, "slow": 21, "ma": "ema"}
    response = await real_client.post(
        "/analysis/backtests",
        json={
            "strategy": "ma_crossover",
            "parameters": params,
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": start,
            "end": end,
            "initial_capital": "10000",
            "fee": 0.001,
        },
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    async def done():
        body = (await real_client.get(f"/analysis/backtests/{job_id}", headers=user.headers)).json()
        return body if body["status"] in ("done", "failed") else None

    body = await eventually(done, timeout=60)
    assert body["status"] == "done", body["error"]
    local = sim_candles("BTC/USDT", "1h", parse_time(start), parse_time(end))
    assert len(local) == 59 * 24
    expected = run_backtest(create_strategy("ma_crossover", params), local, 10_000, 0.001)
    assert body["result"]["metrics"] == expected.metrics
    assert len(body["result"]["equity_curve"]) == len(local)


async def test_indicators_and_signals_read_the_live_market(real_client, user):
    response = await real_client.get(
        "/analysis/indicators",
        params={
            "symbol": "ETH/USDT",
            "timeframe": "5m",
            "indicators": "rsi:14,bbands:20:2",
            "exchange": "sim",
            "limit": 200,
        },
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["timestamps"]) == 200
    assert body["indicators"]["rsi:14"][13] is None
    assert 0 <= body["indicators"]["rsi:14"][-1] <= 100
    signals = await real_client.get(
        "/analysis/signals", params={"symbol": "ETH/USDT", "exchange": "sim"}, headers=user.headers
    )
    assert signals.status_code == 200, signals.text
    assert {s["strategy"] for s in signals.json()["signals"]} >= {"ma_crossover"}
    unknown = await real_client.get(
        "/analysis/signals", params={"symbol": "NOPE/USDT", "exchange": "sim"}, headers=user.headers
    )
    assert unknown.status_code == 422


def test_the_cli_reads_a_real_exchange_through_the_market_service(market_service, monkeypatch):
    from tradebot.backtest import market_candles

    monkeypatch.setenv("MARKET_SERVICE_URLS", market_service)
    start, end = parse_time("2025-02-01"), parse_time("2025-02-10")
    through_http = market_candles("sim", "SOL/USDT", "30m", start, end)
    assert len(through_http) == 9 * 48
    assert through_http.to_rows() == sim_candles("SOL/USDT", "30m", start, end).to_rows()
