"""A new user's first session, through the gateway, against all six services running as
real processes on real PostgreSQL and Redis, with the exact shapes of docs/api.md."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.servers import running_services

pytestmark = pytest.mark.e2e

ORDER = ["user", "market", "analysis", "trading", "notification"]


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    env = {**service_env, "RATE_LIMIT_PER_MINUTE": "10000"}
    with running_services([*ORDER, "gateway"], env) as urls:
        yield urls


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.mark.timeout(180)
def test_a_new_user_registers_trades_on_paper_backtests_and_is_notified(stack) -> None:
    gw = httpx.Client(base_url=stack["gateway"], timeout=30)
    assert wait_for(lambda: gw.get("/health").status_code == 200, 30), gw.get("/health").json()

    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    password = "correct horse battery 9"
    registered = gw.post("/user/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    assert "password" not in registered.text
    assert "hash" not in registered.text
    login = gw.post("/user/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert gw.get("/user/me", headers=auth).json()["email"] == email

    ticker = gw.get("/market/ticker", params={"symbol": "BTC/USDT", "exchange": "sim"})
    assert ticker.status_code == 200, ticker.text
    assert ticker.json()["symbol"] == "BTC/USDT"
    assert ticker.json()["price"] > 0
    candles = gw.get(
        "/market/ohlcv",
        params={"symbol": "BTC/USDT", "timeframe": "1h", "limit": 300, "exchange": "sim"},
    ).json()["candles"]
    assert len(candles) == 300

    # A protected route without a token is a 401 problem, through the gateway.
    anonymous = gw.get("/trading/orders")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")

    order_body = {
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "quantity": "0.01",
        "price": None,
        "mode": "paper",
        "client_order_id": f"first-{uuid.uuid4().hex[:8]}",
    }
    order = gw.post("/trading/orders", json=order_body, headers=auth)
    assert order.status_code == 201, order.text
    placed = order.json()
    assert placed["status"] == "filled"
    assert Decimal(placed["filled_quantity"]) == Decimal("0.01")
    assert Decimal(placed["fee"]) > 0
    again = gw.post("/trading/orders", json=order_body, headers=auth)
    assert again.status_code == 200
    assert again.json()["id"] == placed["id"]
    trades = gw.get("/trading/trades", headers=auth).json()
    assert len(trades["items"]) == trades["total"] == 1

    def notified():
        response = gw.get("/notifications", headers=auth)
        return [n for n in response.json()["items"] if n["kind"] == "trade.executed"]

    notes = wait_for(notified, 20)
    assert len(notes) == 1, notes

    backtest = gw.post(
        "/analysis/backtests",
        headers=auth,
        json={
            "strategy": "ma_crossover",
            "parameters": {"fast": 10, "slow": 30, "ma": "sma"},
            "candles": candles,
            "initial_capital": "10000",
            "fee": 0.001,
            "slippage": 0.0,
            "position_size": 1.0,
        },
    )
    assert backtest.status_code == 202, backtest.text
    job_id = backtest.json()["id"]

    def finished():
        job = gw.get(f"/analysis/backtests/{job_id}", headers=auth).json()
        return job if job["status"] in ("done", "failed") else None

    job = wait_for(finished, 30)
    assert job, "the backtest did not finish"
    assert job["status"] == "done", job
    metrics = job["result"]["metrics"]
    for name in (
        "final_equity",
        "total_return",
        "cagr",
        "max_drawdown",
        "sharpe",
        "sortino",
        "win_rate",
        "profit_factor",
        "n_trades",
        "exposure",
    ):
        assert name in metrics
    assert len(job["result"]["equity_curve"]) == len(candles)

    catalog = gw.get("/trading/strategies/catalog", headers=auth)
    assert catalog.status_code == 200
    names = {entry["name"] for entry in catalog.json()["items"]}
    assert {"ma_crossover", "rsi_divergence", "bollinger_bands"} <= names

    logout = gw.post("/user/auth/logout", headers=auth)
    assert logout.status_code in (200, 204)
    assert gw.get("/user/me", headers=auth).status_code == 401
    assert httpx.get(stack["trading"] + "/trading/orders", headers=auth).status_code == 401
