"""Optimisation throughput and worker memory, on the storage the product uses (Optuna's
journal on Redis) beside Optuna's relational storage on PostgreSQL, in one run.

Workload: SMA crossover (fast 5..50, slow 20..200, integers) on 100,000 1-minute candles
of the sim exchange, fee 0.1 %, objective Sharpe, the worker the analysis service runs
(:class:`analysis_service.optimisations.runner.Worker`: permits, heartbeats, each trial's
backtest with the shared engine). Each worker is a spawned process; the clock starts when
every worker of a run has loaded (a barrier) and stops when the last trial ends.

1. trials/s with one worker, then with two side by side on one study, for each storage
   and sampler (``--trials`` per run, default 500): total and per worker, two workers
   over one, and the CPU the workers spent per trial (which the load of a shared machine
   does not change: 1000 / that is what one free core would run).
2. a worker's resident memory (RSS) after 200 and after 2,000 trials of one study.

Targets (issue 16): at least 50 trials/s per worker including the backtest, two workers
at least 1.7 times one, memory growth under 50 MB from 200 to 2,000 trials. Reference
(issue 16): Optuna 5.0's relational storage on this PostgreSQL ran a trivial
two-parameter objective at 25-38 trials/s in one process.

    .venv/bin/python -m bench.optimise [--candles 100000] [--trials 500]
        [--samplers tpe,random] [--memory-trials 2000] [--skip-rdb]

The relational storage needs psycopg (the ``bench`` extra: pip install -e '.[bench]');
without it the script says so and measures the journal alone. Scratch database and Redis
index as the tests use (tests/stores.py); figures are noisy on a shared machine: the load
average is printed with them.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from analysis_service.optimisations.runner import StudyJob, Worker, WorkerConfig  # noqa: E402
from analysis_service.optimisations.storage import LostTrialCallback  # noqa: E402
from shared.candles import Candles  # noqa: E402
from tests.stores import RedisIndexLock, create_database, drop_database  # noqa: E402
from tradebot.backtest import sim_candles  # noqa: E402

START_MS = 1_672_531_200_000  # 2023-01-01
SPACE = {"fast": {"low": 5, "high": 50}, "slow": {"low": 20, "high": 200}}
CONTEXT = multiprocessing.get_context("spawn")
MB = 1024 * 1024


def rdb_storage(url: str, heartbeat_s: int, grace_s: float) -> Any:
    """Optuna's relational storage in a schema of its own (its tables and its own
    alembic_version would collide with ours in ``public``)."""

    def build(on_lost: LostTrialCallback) -> Any:
        import optuna

        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"connect_args": {"options": "-csearch_path=optuna"}},
            heartbeat_interval=heartbeat_s,
            grace_period=int(grace_s),
            heartbeat_stale_trial_callback=on_lost,
        )

    return build


def _worker(
    job: StudyJob, rdb_url: str | None, barrier: Any, results: Any, marks: list[int]
) -> None:
    """One worker process: load, wait for the others, run, report when its last trial
    ended (the summary every worker computes afterwards is not throughput) and its RSS
    after ``marks`` trials."""
    rss: dict[int, int] = {}
    done, last = 0, 0.0

    def after_trial(number: int) -> None:
        nonlocal done, last
        done += 1
        last = time.time()
        if done in marks:
            rss[done] = psutil.Process().memory_info().rss

    storage = None if rdb_url is None else rdb_storage(rdb_url, 1, 10.0)
    worker = Worker(job, on_trial=after_trial, storage=storage)
    barrier.wait()
    start, cpu = time.time(), time.process_time()
    outcome = worker.run()
    results.put(
        {
            "trials_run": outcome.trials_run,
            "seconds": last - start,
            "end": last,
            "cpu": time.process_time() - cpu,
            "rss": rss,
        }
    )


def run(
    candles: Candles,
    redis_url: str,
    *,
    workers: int,
    trials: int,
    sampler: str,
    rdb_url: str | None,
    marks: list[int] | None = None,
) -> dict[str, Any]:
    settings = {
        "strategy": "ma_crossover",
        "space": SPACE,
        "fee": 0.001,
        "n_trials": trials,
        "sampler": sampler,
        "min_trades": 1,
    }
    job = StudyJob(f"bench-{uuid.uuid4().hex[:8]}", settings, candles, WorkerConfig(redis_url))
    barrier, results = CONTEXT.Barrier(workers + 1), CONTEXT.Queue()
    processes = [
        CONTEXT.Process(target=_worker, args=(job, rdb_url, barrier, results, marks or []))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    barrier.wait()  # every worker has loaded
    start = time.time()
    reports = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
    seconds = max(r["end"] for r in reports) - start
    total = sum(r["trials_run"] for r in reports)
    return {
        "workers": workers,
        "trials": total,
        "seconds": seconds,
        "rate": total / seconds,
        "per_worker": [r["trials_run"] / r["seconds"] for r in reports],
        # CPU the workers used per trial (their summaries included): what the trials cost
        # whatever else the machine runs.
        "cpu_ms": 1000 * sum(r["cpu"] for r in reports) / max(total, 1),
        "rss": reports[0]["rss"],
    }


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candles", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--samplers", default="tpe,random")
    parser.add_argument("--memory-trials", type=int, default=2000)
    parser.add_argument("--skip-rdb", action="store_true")
    args = parser.parse_args()

    candles = sim_candles("BTC/USDT", "1m", START_MS, START_MS + args.candles * 60_000)
    print(f"{len(candles):,} candles; {os.cpu_count()} CPUs; load average {load()}")
    lock = RedisIndexLock()
    database = None
    storages: list[tuple[str, str | None]] = [("redis journal", None)]
    if args.skip_rdb:
        pass
    elif importlib.util.find_spec("psycopg") is None:
        print("psycopg is not installed (pip install -e '.[bench]'): no relational storage")
    else:
        database = create_database("bench_optimise", migrate=False)
        url = database.replace("postgresql+asyncpg://", "postgresql+psycopg://")
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE SCHEMA optuna"))
        engine.dispose()
        storages.append(("postgresql (rdb)", url))
    try:
        print(
            f"\n{'storage':<18} {'sampler':<7} {'workers':>7} {'trials':>6} {'seconds':>8} "
            f"{'trials/s':>9} {'per worker':>16} {'x one':>6} {'cpu ms/trial':>12}  load"
        )
        for name, rdb_url in storages:
            for sampler in args.samplers.split(","):
                one = None
                for workers in (1, 2):
                    figures = run(
                        candles,
                        lock.url,
                        workers=workers,
                        trials=args.trials,
                        sampler=sampler,
                        rdb_url=rdb_url,
                    )
                    one = one or figures["rate"]
                    per_worker = " ".join(f"{r:.1f}" for r in figures["per_worker"])
                    print(
                        f"{name:<18} {sampler:<7} {workers:>7} {figures['trials']:>6} "
                        f"{figures['seconds']:>8.2f} {figures['rate']:>9.1f} {per_worker:>16} "
                        f"{figures['rate'] / one:>6.2f} {figures['cpu_ms']:>12.1f}  {load()}",
                        flush=True,
                    )
        print(f"\nmemory of one worker (redis journal, tpe, {args.memory_trials} trials):")
        marks = [200, args.memory_trials]
        figures = run(
            candles,
            lock.url,
            workers=1,
            trials=args.memory_trials,
            sampler="tpe",
            rdb_url=None,
            marks=marks,
        )
        rss = figures["rss"]
        growth = (rss[marks[1]] - rss[marks[0]]) / MB
        print(
            f"  RSS after {marks[0]} trials {rss[marks[0]] / MB:.1f} MB, after {marks[1]} "
            f"{rss[marks[1]] / MB:.1f} MB: growth {growth:.1f} MB (target < 50); "
            f"{figures['rate']:.1f} trials/s over the whole study; load {load()}"
        )
        print(
            "\ntargets: >= 50 trials/s per worker; two workers >= 1.7 x one; memory growth "
            "< 50 MB from 200 to 2,000 trials"
        )
    finally:
        redis.Redis.from_url(lock.url).flushdb()
        lock.release()
        if database is not None:
            drop_database(database)


if __name__ == "__main__":
    main()
