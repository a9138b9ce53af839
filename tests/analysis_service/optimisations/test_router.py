"""`/analysis/optimisations`: a run goes from 202 to its best parameters through the
replica's worker process, walk-forward shows in- and out-of-sample metrics per fold, bad
requests are 422s that say what to fix, a user sees only their own runs, and DELETE
cancels."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from analysis_service.main import create_app
from analysis_service.settings import AnalysisSettings
from shared.events import NOTIFICATION_QUEUE
from tests.analysis_service.fake_market import MARKET_CANDLES, FakeMarket
from tests.analysis_service.optimisations.synthetic import BEST, SPACE, two_cycles
from tests.factories import create_user
from tests.servers import app_client
from tests.stores import TEST_INTERNAL_TOKEN
from tests.waiting import eventually

ROWS = two_cycles().to_rows()
STUDY: dict[str, Any] = {
    "strategy": "ma_crossover",
    "space": SPACE,
    "fee": 0.001,
    "n_trials": 40,
    "seed": 1,
}


@pytest.fixture
def settings(service_env: dict[str, str]) -> AnalysisSettings:
    return AnalysisSettings(
        market_service_urls="http://market.test",
        optimisation_poll_s=0.2,
        optimisation_progress_s=0.2,
        optimisation_grace_s=3.0,
    )


@pytest.fixture
async def idle(settings: AnalysisSettings, market: FakeMarket) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a replica without optimisation workers (runs stay queued)."""
    app = create_app(
        settings.model_copy(update={"optimisation_workers": 0}),
        market_transport=httpx.MockTransport(market),
    )
    async with app_client(app) as client:
        yield client


async def finished(client, user, optimisation_id, *, timeout=90.0):
    async def check():
        path = f"/analysis/optimisations/{optimisation_id}"
        body = (await client.get(path, headers=user.headers)).json()
        return body if body["status"] in ("done", "failed", "cancelled") else None

    return await eventually(check, timeout=timeout, interval=0.2)


async def notifications(redis) -> list[dict[str, Any]]:
    entries = await redis.xrange(NOTIFICATION_QUEUE)
    return [orjson.loads(fields["data"]) for _, fields in entries]


async def test_a_run_finds_its_best_parameters_stores_its_trials_and_notifies_its_owner(
    client, user, redis
):
    response = await client.post(
        "/analysis/optimisations", json={**STUDY, "candles": ROWS}, headers=user.headers
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    body = await finished(client, user, run_id)
    assert body["status"] == "done", body["error"]
    assert body["best_params"] == BEST
    assert body["progress"]["trials_done"] == body["progress"]["trials_total"] == 40
    assert body["progress"]["fraction"] == 1.0
    result = body["result"]
    assert result["best"]["parameters"] == {**BEST, "ma": "sma"}
    assert result["trials"]["requested"] == 40
    assert set(result["importances"]) == {"fast", "slow"}
    assert result["backtest"]["metrics"]["sharpe"] == body["best_value"]
    assert result["top_trials"][0]["params"] == BEST

    trials = (
        await client.get(f"/analysis/optimisations/{run_id}/trials", headers=user.headers)
    ).json()
    assert trials["total"] == 40
    assert trials["items"][0]["params"] == BEST  # best first
    assert trials["items"][0]["metrics"]["n_trades"] > 0
    failed = [t for t in trials["items"] if t["state"] == "failed"]
    assert all("fast must be smaller than slow" in t["note"] for t in failed)

    sent = await eventually(lambda: notifications(redis))
    assert sent[0]["user_id"] == str(user.id)
    assert sent[0]["kind"] == "optimisation.finished"
    assert "fast=12, slow=18" in sent[0]["body"]
    assert sent[0]["source_event_id"] == run_id

    report = await client.get(f"/analysis/optimisations/{run_id}/report", headers=user.headers)
    assert report.headers["content-type"].startswith("text/html")
    page = report.text
    assert "Optimisation history" in page
    assert "Parameter importances" in page
    assert "<svg" in page
    assert "<script" not in page  # self-contained: no script, nothing fetched
    assert "src=" not in page

    listed = (await client.get("/analysis/optimisations", headers=user.headers)).json()
    assert [item["id"] for item in listed["items"]] == [run_id]

    best = await client.get(
        f"/analysis/internal/users/{user.id}/optimisations/{run_id}/best",
        headers={"X-Internal-Token": TEST_INTERNAL_TOKEN},
    )
    assert best.status_code == 200, best.text
    assert best.json()["parameters"] == {**BEST, "ma": "sma"}
    refused = await client.get(f"/analysis/internal/users/{user.id}/optimisations/{run_id}/best")
    assert refused.status_code == 401


async def test_walk_forward_on_market_candles_shows_in_and_out_of_sample_per_fold(client, user):
    start, end = MARKET_CANDLES.timestamp[0], MARKET_CANDLES.timestamp[2400]
    response = await client.post(
        "/analysis/optimisations",
        json={
            "strategy": "ma_crossover",
            "space": {"fast": {"low": 5, "high": 20}, "slow": {"low": 25, "high": 60}},
            "n_trials": 8,
            "min_trades": 1,
            "seed": 2,
            "walk_forward": {"folds": 3},
            "exchange": "sim",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": int(start) / 1000,
            "end": int(end) / 1000,
        },
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    body = await finished(client, user, response.json()["id"])
    assert body["status"] == "done", body["error"]
    assert body["progress"]["trials_total"] == 24
    folds = body["result"]["folds"]
    assert [fold["fold"] for fold in folds] == [0, 1, 2]
    for fold in folds:
        assert fold["train"]["end"] < fold["test"]["start"]
        best = fold["best"]
        assert set(best["in_sample"]) == set(best["out_of_sample"])
        assert best["in_sample_value"] is not None
    recommended = body["result"]["best"]
    scored = [f for f in folds if f["best"]["out_of_sample_value"] is not None]
    winner = max(scored, key=lambda f: (f["best"]["out_of_sample_value"], f["fold"]))
    assert recommended["fold"] == winner["fold"]
    assert recommended["params"] == winner["best"]["params"]
    assert recommended["value"] == winner["best"]["out_of_sample_value"]


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"space": {}}, ["body", "space"], "search space is empty"),
        ({"space": {"fats": {"low": 5, "high": 9}}}, ["body", "space", "fats"], "no parameter"),
        (
            {"space": {"fast": {"low": 0, "high": 9}}},
            ["body", "space", "fast", "low"],
            "below what fast allows",
        ),
        ({"walk_forward": {"folds": 12}}, ["body", "walk_forward"], "use fewer folds"),
        (
            {"sampler": "cmaes", "space": {"fast": {"low": 3, "high": 9}, "ma": {}}},
            ["body", "sampler"],
            "CMA-ES applies",
        ),
    ],
)
async def test_bad_requests_are_422s_that_say_what_to_fix_and_store_nothing(
    idle, user, change, where, says
):
    response = await idle.post(
        "/analysis/optimisations",
        json={**STUDY, "candles": ROWS[:1000], **change},
        headers=user.headers,
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == where
    assert says in problem["detail"]
    listed = (await idle.get("/analysis/optimisations", headers=user.headers)).json()
    assert listed["total"] == 0


async def test_another_users_run_is_not_found(idle, user, session, redis):
    run_id = (
        await idle.post(
            "/analysis/optimisations", json={**STUDY, "candles": ROWS}, headers=user.headers
        )
    ).json()["id"]
    other = await create_user(session, redis)
    for path in ("", "/trials", "/report"):
        response = await idle.get(f"/analysis/optimisations/{run_id}{path}", headers=other.headers)
        assert response.status_code == 404, path
    deleted = await idle.delete(f"/analysis/optimisations/{run_id}", headers=other.headers)
    assert deleted.status_code == 404
    best = await idle.get(
        f"/analysis/internal/users/{other.id}/optimisations/{run_id}/best",
        headers={"X-Internal-Token": TEST_INTERNAL_TOKEN},
    )
    assert best.status_code == 404
    mine = await idle.get(
        f"/analysis/internal/users/{user.id}/optimisations/{run_id}/best",
        headers={"X-Internal-Token": TEST_INTERNAL_TOKEN},
    )
    assert mine.status_code == 409  # not finished: no parameters to build a bot from
    assert (await idle.get("/analysis/optimisations", headers=other.headers)).json()["total"] == 0


async def test_a_user_with_two_runs_going_gets_a_429_for_a_third(idle, user):
    body = {**STUDY, "candles": ROWS[:1000]}
    for _ in range(2):
        response = await idle.post("/analysis/optimisations", json=body, headers=user.headers)
        assert response.status_code == 202
    refused = await idle.post("/analysis/optimisations", json=body, headers=user.headers)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0


async def test_delete_cancels_a_running_optimisation_which_keeps_what_it_did(client, user, redis):
    response = await client.post(
        "/analysis/optimisations",
        json={**STUDY, "n_trials": 100_000, "timeout_s": 600, "seed": None, "candles": ROWS},
        headers=user.headers,
    )
    run_id = response.json()["id"]

    async def some_trials_done():
        body = (await client.get(f"/analysis/optimisations/{run_id}", headers=user.headers)).json()
        return body["progress"]["trials_done"] >= 5

    await eventually(some_trials_done, timeout=60, interval=0.2)
    cancelled = await client.delete(f"/analysis/optimisations/{run_id}", headers=user.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    async def result_kept():
        body = (await client.get(f"/analysis/optimisations/{run_id}", headers=user.headers)).json()
        return body if body["result"] is not None else None

    body = await eventually(result_kept, timeout=30, interval=0.2)
    assert body["status"] == "cancelled"
    assert 5 <= body["progress"]["trials_done"] < 100_000
    assert body["best_params"] is not None
    assert await notifications(redis) == []  # the owner cancelled it: nothing to tell

    gone = await client.delete(f"/analysis/optimisations/{run_id}", headers=user.headers)
    assert gone.status_code == 204
    missing = await client.get(f"/analysis/optimisations/{run_id}", headers=user.headers)
    assert missing.status_code == 404
