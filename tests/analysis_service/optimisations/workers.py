"""Optimisation workers as real processes, for the tests (spawned: module-level entry
points, results sent back on a queue)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.process import BaseProcess
from typing import Any

from analysis_service.optimisations.permits import TrialPermits
from analysis_service.optimisations.runner import StudyJob, Worker

CONTEXT = multiprocessing.get_context("spawn")


def _report(job: StudyJob, results: Any, start_together: Any) -> None:
    worker = Worker(job)
    start_together.wait(timeout=60)  # both started (imports done) before either runs a trial
    outcome = worker.run()
    summary = outcome.summary
    results.put(
        {
            "pid": os.getpid(),
            "trials_run": outcome.trials_run,
            "finished": outcome.finished,
            "trials": None if summary is None else summary.trials,
            "best_params": None if summary is None else summary.best_params,
        }
    )


def run_worker(job: StudyJob, results: Any, start_together: Any) -> None:
    _report(job, results, start_together)


def die_in_trial(job: StudyJob, results: Any, start_together: Any, trial: int) -> None:
    """Run trials and SIGKILL this process in the middle of its ``trial``-th one (just
    after it took its permit and was stamped by the heartbeat)."""
    take = TrialPermits.take
    calls = 0

    def take_then_die(self: TrialPermits, trial_id: int, fold: int) -> int:
        nonlocal calls
        left = take(self, trial_id, fold)
        calls += 1
        if calls == trial:
            os.kill(os.getpid(), signal.SIGKILL)
        return left

    TrialPermits.take = take_then_die  # type: ignore[method-assign]
    _report(job, results, start_together)


def start(target: Any, *args: Any) -> BaseProcess:
    process = CONTEXT.Process(target=target, args=args, daemon=True)
    process.start()
    return process
