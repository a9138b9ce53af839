"""Optimisation workers: the optimum of a made-up series is found, one worker with a seed
repeats itself, two worker processes share a study trial by trial, and a worker killed
mid-trial costs only that trial."""

import uuid

from analysis_service.optimisations.runner import StudyJob, Worker, WorkerConfig
from tests.analysis_service.optimisations import workers
from tests.analysis_service.optimisations.synthetic import BEST, SPACE, two_cycles

CANDLES = two_cycles()
SETTINGS = {"strategy": "ma_crossover", "space": SPACE, "fee": 0.001, "n_trials": 60, "seed": 1}


def job(redis_url, **settings) -> StudyJob:
    return StudyJob(
        str(uuid.uuid4()),
        {**SETTINGS, **settings},
        CANDLES,
        WorkerConfig(redis_url=redis_url, grace_s=2.0, poll_s=0.1),
    )


def test_a_small_study_finds_the_clearly_best_pair_of_a_made_up_series(redis_url):
    outcome = Worker(job(redis_url)).run()
    summary = outcome.summary
    assert summary is not None
    assert summary.best_params == BEST
    assert summary.result["best"]["parameters"] == {**BEST, "ma": "sma"}
    assert summary.result["trials"]["requested"] == 60
    assert len(summary.trials) == outcome.trials_run == 60
    importances = summary.result["importances"]
    assert set(importances) == {"fast", "slow"}
    assert abs(sum(importances.values()) - 1) < 1e-6
    assert summary.result["backtest"]["metrics"]["sharpe"] == summary.best_value


def test_the_same_seed_gives_the_same_trials_and_best_parameters_on_one_worker(redis_url):
    first, second, other = (
        Worker(job(redis_url, n_trials=25, seed=seed)).run().summary for seed in (7, 7, 8)
    )
    assert first is not None
    assert second is not None
    assert other is not None
    assert first.best_params == second.best_params
    assert [t["params"] for t in first.trials] == [t["params"] for t in second.trials]
    assert [t["params"] for t in first.trials] != [t["params"] for t in other.trials]


def test_two_worker_processes_run_each_trial_once_and_exactly_the_requested_count(redis_url):
    shared = job(redis_url, n_trials=40, seed=None)
    results, together = workers.CONTEXT.Queue(), workers.CONTEXT.Barrier(2)
    processes = [workers.start(workers.run_worker, shared, results, together) for _ in range(2)]
    reports = [results.get(timeout=90) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    assert sum(r["trials_run"] for r in reports) == 40  # evaluations, across both
    assert all(r["trials_run"] > 0 for r in reports)  # both took part
    for report in reports:  # each saw the same finished study
        trials = report["trials"]
        assert len(trials) == 40
        assert len({t["number"] for t in trials}) == 40
        assert {t["state"] for t in trials} <= {"complete", "failed"}


def test_a_worker_killed_mid_trial_loses_that_trial_only_and_the_study_completes(redis_url):
    shared = job(redis_url, n_trials=30, seed=None)
    results, together = workers.CONTEXT.Queue(), workers.CONTEXT.Barrier(2)
    survivor = workers.start(workers.run_worker, shared, results, together)
    doomed = workers.start(workers.die_in_trial, shared, results, together, 5)
    report = results.get(timeout=90)
    survivor.join(timeout=10)
    doomed.join(timeout=10)
    assert doomed.exitcode == -9  # SIGKILL
    assert report["pid"] == survivor.pid
    trials = report["trials"]
    lost = [t for t in trials if t["state"] == "lost"]
    evaluated = [t for t in trials if t["state"] != "lost"]
    assert len(lost) == 1  # the trial it was running
    assert len(evaluated) == 30  # another trial ran in its place
    assert report["trials_run"] == 30 - 4  # the killed worker had finished four
    assert len({t["number"] for t in trials}) == len(trials)


def test_a_time_budget_ends_the_run_without_a_trial_count(redis_url):
    outcome = Worker(job(redis_url, n_trials=None, timeout_s=1.5, seed=None)).run()
    summary = outcome.summary
    assert summary is not None
    assert outcome.trials_run > 5
    assert summary.result["trials"]["requested"] is None
    assert len(summary.trials) == outcome.trials_run


def test_the_grid_sampler_runs_every_point_once(redis_url):
    space = {"fast": {"low": 6, "high": 12, "step": 3}, "slow": {"low": 18, "high": 30, "step": 6}}
    outcome = Worker(job(redis_url, space=space, sampler="grid", n_trials=500)).run()
    summary = outcome.summary
    assert summary is not None
    points = [(t["params"]["fast"], t["params"]["slow"]) for t in summary.trials]
    assert sorted(points) == [(f, s) for f in (6, 9, 12) for s in (18, 24, 30)]
    assert summary.best_params == BEST


def test_a_rule_strategy_is_searched_through_the_placeholders_in_its_rules(redis_url):
    rules = {
        "strategy": "rules",
        "parameters": {"entry": "sma({fast}) crosses_above sma({slow})",
                       "exit": "sma({fast}) crosses_below sma({slow})"},
        "space": SPACE,
        "sampler": "grid",
    }  # fmt: skip
    outcome = Worker(job(redis_url, **rules)).run()
    summary = outcome.summary
    assert summary is not None
    assert summary.best_params == BEST  # the same rule as ma_crossover, the same optimum
    assert summary.result["best"]["parameters"]["entry"] == "sma(12) crosses_above sma(18)"
