"""`POST /trading/bots` with an `optimisation_id`: the engine asks the analysis service (a
real one, over HTTP) for the run's recommended parameters, saves them as a strategy and
creates the bot on them in one call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from analysis_service.main import create_app as create_analysis
from analysis_service.settings import AnalysisSettings
from tests.servers import UvicornThread, app_client, free_port
from tests.trading_engine.stubs import MarketStub
from trading_engine.main import create_app

BEST = {"fast": 12, "slow": 18, "ma": "sma"}


@pytest.fixture(scope="module")
def analysis_url(service_env: dict[str, str]) -> Iterator[str]:
    settings = AnalysisSettings(
        optimisation_workers=0, backtest_workers=0, market_service_urls="http://127.0.0.1:9"
    )
    server = UvicornThread(create_analysis(settings)).start()
    yield server.url
    server.stop()


@pytest.fixture
async def trading(engine_settings, analysis_url):
    app = create_app(engine_settings(run_bots=False, analysis_service_urls=analysis_url))
    async with app_client(app) as http:
        yield http


async def optimisation(session, user_id: uuid.UUID, *, status: str = "done") -> str:
    result: dict[str, Any] = {
        "best": {
            "parameters": BEST,
            "stops": {"stop_loss": 0.0312, "take_profit": None, "trailing_stop": None},
            "value": 1.7,
        }
    }
    run_id = uuid.uuid4()
    await session.execute(
        text(
            "INSERT INTO optimisations (id, user_id, status, strategy, objective, sampler,"
            " request, space, exchange, symbol, timeframe, result)"
            " VALUES (:id, :user, :status, 'ma_crossover', 'sharpe', 'tpe', '{}', '{}',"
            " 'sim', 'BTC/USDT', '4h', CAST(:result AS jsonb))"
        ),
        {"id": run_id, "user": user_id, "status": status, "result": orjson.dumps(result).decode()},
    )
    await session.commit()
    return str(run_id)


async def test_a_bot_is_created_from_an_optimisations_best_parameters_in_one_call(
    trading: httpx.AsyncClient, market: MarketStub, new_user, session
) -> None:
    user = await new_user()
    run_id = await optimisation(session, user.id)
    response = await trading.post(
        "/trading/bots",
        json={"optimisation_id": run_id, "capital": "1000"},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    bot = response.json()
    assert bot["timeframe"] == "4h"  # the optimisation's, since the request named none
    assert bot["exchange"] == "sim"
    assert bot["symbol"] == "BTC/USDT"
    assert bot["risk"]["stop_loss"] == "0.03120000"
    assert bot["strategy"] == "ma_crossover"
    strategy = (
        await trading.get(f"/trading/strategies/{bot['strategy_id']}", headers=user.headers)
    ).json()
    assert strategy["parameters"] == BEST
    assert strategy["name"] == f"ma_crossover optimised ({run_id[:8]})"


async def test_another_users_or_an_unfinished_optimisation_creates_nothing(
    trading: httpx.AsyncClient, market: MarketStub, new_user, session
) -> None:
    owner, other = await new_user(), await new_user()
    theirs = await optimisation(session, owner.id)
    running = await optimisation(session, other.id, status="running")
    body: dict[str, Any] = {"symbol": "BTC/USDT", "capital": "1000"}
    refused = await trading.post(
        "/trading/bots", json={**body, "optimisation_id": theirs}, headers=other.headers
    )
    assert refused.status_code == 404
    unfinished = await trading.post(
        "/trading/bots", json={**body, "optimisation_id": running}, headers=other.headers
    )
    assert unfinished.status_code == 409
    assert "finished optimisation only" in unfinished.json()["detail"]
    both = await trading.post(
        "/trading/bots",
        json={**body, "optimisation_id": running, "strategy_id": str(uuid.uuid4())},
        headers=other.headers,
    )
    assert both.status_code == 422
    assert (await trading.get("/trading/bots", headers=other.headers)).json()["items"] == []
    assert (await trading.get("/trading/strategies", headers=other.headers)).json()["items"] == []


async def test_an_unreachable_analysis_service_is_a_503(
    engine_settings, market: MarketStub, new_user, session
) -> None:
    user = await new_user()
    run_id = await optimisation(session, user.id)
    app = create_app(
        engine_settings(run_bots=False, analysis_service_urls=f"http://127.0.0.1:{free_port()}")
    )
    async with app_client(app) as http:
        response = await http.post(
            "/trading/bots",
            json={"optimisation_id": run_id, "symbol": "BTC/USDT", "capital": "1000"},
            headers=user.headers,
        )
    assert response.status_code == 503
    assert response.headers["retry-after"]
