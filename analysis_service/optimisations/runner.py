"""One optimisation worker: joins the shared studies of an optimisation and runs trials
until none are left (docs/trading.md, optimisation).

Every worker of an optimisation (a process of each analysis replica, each process of
``tradebot optimise --workers N``) runs :func:`run_worker` with the same request and its
own copy of the candles, loaded once. Studies are Optuna studies in the shared journal
(:mod:`analysis_service.optimisations.storage`), one per walk-forward fold, taken in
order; in each the worker calls ``study.optimize`` and Optuna hands out the trials. A
study is over when its permits are used up (:mod:`analysis_service.optimisations.permits`)
and no trial is still running anywhere (a worker waits for the others' last trials,
failing those whose worker died, whose permits then come back to be run), or when its
share of the time budget is spent, or on cancellation. The worker that sees the last
study over summarises the run (:mod:`analysis_service.optimisations.summary`); the caller
stores the first summary (every finishing worker computes the same one).

Runs in a child process (the service's process pool, the CLI's workers): it holds the
GIL for most of a trial, so it must not share a process with an event loop.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from redis import Redis

from analysis_service.optimisations.evaluation import backtest, score, trial_metrics
from analysis_service.optimisations.folds import Window, windows
from analysis_service.optimisations.permits import CANCELLED, NONE_LEFT, TrialPermits
from analysis_service.optimisations.plan import Plan, plan_of
from analysis_service.optimisations.schemas import StudySettings
from analysis_service.optimisations.storage import (
    Heartbeat,
    LostTrialCallback,
    SharedStudyStorage,
    StudyKeys,
    study_name,
)
from analysis_service.optimisations.summary import ERROR, OUTCOME, SURPLUS, Summary, summarise
from shared.backtest import simulate_signals
from shared.candles import Candles
from shared.strategies import StrategyParamsError

StorageFactory = Callable[[LostTrialCallback], optuna.storages.BaseStorage]


@dataclass(frozen=True)
class WorkerConfig:
    redis_url: str
    heartbeat_s: float = 1.0
    grace_s: float = 10.0
    poll_s: float = 0.05  # waiting for the other workers' last trials
    max_points: int = 5000


@dataclass(frozen=True)
class StudyJob:
    key: str  # the optimisation id: names the Redis keys and the studies
    settings: dict[str, Any]  # StudySettings as JSON (the stored request)
    candles: Candles
    config: WorkerConfig


@dataclass
class WorkerOutcome:
    trials_run: int
    finished: bool  # every study of the run is over (or it was cancelled)
    cancelled: bool
    summary: Summary | None


class TrialObjective:
    """Scores one point of the space on a fold's training window."""

    def __init__(
        self,
        plan: Plan,
        candles: Candles,
        permits: TrialPermits,
        fold: int,
        *,
        heartbeat: Heartbeat,
        fail_lost: Callable[[optuna.Study], None],
    ) -> None:
        self.plan = plan
        self.candles = candles
        self.permits = permits
        self.fold = fold
        self.heartbeat = heartbeat
        self.fail_lost = fail_lost
        self.cancelled = False
        self.trials_run = 0

    def __call__(self, trial: optuna.Trial) -> float:
        self.fail_lost(trial.study)  # other workers' trials lost since the last one
        self.heartbeat.trial_id = trial._trial_id
        try:
            return self._evaluate(trial)
        finally:
            self.heartbeat.trial_id = None

    def _evaluate(self, trial: optuna.Trial) -> float:
        left = self.permits.take(trial._trial_id, self.fold)
        if left in (NONE_LEFT, CANCELLED):
            self.cancelled = left == CANCELLED
            trial.study.stop()
            trial.set_user_attr(SURPLUS, True)
            raise optuna.TrialPruned("no permit left")
        if left == 0:
            trial.study.stop()  # this trial took the last permit
        self.trials_run += 1
        values = self.plan.space.suggest(trial)
        try:
            strategy, stops = self.plan.space.build(values)
        except (StrategyParamsError, ValueError) as exc:
            self._fail(trial, f"invalid parameters: {exc}", None)
        try:
            result = backtest(strategy, self.candles, self.plan.costs, stops)
        except Exception as exc:
            trial.set_user_attr(ERROR, f"{type(exc).__name__}: {exc}"[:500])
            raise
        metrics = trial_metrics(result.metrics)
        trades = int(metrics["n_trades"] or 0)
        least = self.plan.min_trades
        if trades < least:
            self._fail(trial, f"{trades} trades, fewer than min_trades ({least})", metrics)
        value, why = score(metrics, self.plan.objective)
        if value is None:
            return self._fail(trial, why, metrics)
        trial.set_user_attr(OUTCOME, {"metrics": metrics})
        return value

    @staticmethod
    def _fail(trial: optuna.Trial, why: str, metrics: dict[str, Any] | None) -> NoReturn:
        # Pruned, not failed: Optuna's samplers rank a pruned trial among the worst and
        # steer away from it, while a failed one is ignored and its region tried again.
        trial.set_user_attr(OUTCOME, {"metrics": metrics, "failure": why})
        raise optuna.TrialPruned(why)


def warm_up(candles: Candles) -> None:
    """Load the engine's compiled kernels before the first trial (a second or so from
    numba's disk cache), so no trial, and no time budget, pays for it."""
    head = candles.head(min(len(candles), 64))
    simulate_signals(head, np.zeros(len(head), dtype=np.int8))


def seed_for(seed: int | None, worker: int, fold: int) -> int | None:
    """The first worker of a run samples with the request's seed (so one worker repeats
    a run exactly); the others get seeds of their own, not copies of its suggestions."""
    if seed is None:
        return None
    return (seed + 1_000_003 * worker + 7_919 * fold) % 2**32


def make_sampler(plan: Plan, seed: int | None) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if plan.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        grid = plan.space.grid() if plan.sampler == "grid" else None
        if grid is not None:  # plan_of refused a grid it cannot list
            return optuna.samplers.GridSampler(grid, seed=seed)
        if plan.sampler == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        return optuna.samplers.TPESampler(seed=seed)


def _running(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


class Worker:
    """The loop of one worker over the studies of one optimisation."""

    def __init__(
        self,
        job: StudyJob,
        *,
        on_trial: Callable[[int], None] | None = None,
        storage: StorageFactory | None = None,
    ) -> None:
        """``on_trial`` is called after each trial of this worker with its number;
        ``storage`` builds another Optuna storage than the Redis journal (bench/optimise.py
        compares Optuna's relational storage) from the callback for lost trials."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.job = job
        self.config = job.config
        self.plan = plan_of(StudySettings.model_validate(job.settings))
        self.redis = Redis.from_url(job.config.redis_url)
        self.keys = StudyKeys(job.key)
        self.permits = TrialPermits(self.redis, self.keys, limit=self.plan.n_trials)
        self.windows = windows(len(job.candles), self.plan.folds, anchored=self.plan.anchored)
        self.on_trial = on_trial
        self.storage = (
            storage(self._lost)
            if storage is not None
            else SharedStudyStorage(
                self.redis, self.keys, grace_s=self.config.grace_s, on_lost=self._lost
            )
        )
        self.heartbeat = Heartbeat(self.redis, self.keys, self.config.heartbeat_s)
        warm_up(job.candles)
        self.worker_index = int(self.redis.incr(self.keys.workers)) - 1
        self.start_at, self.deadline = self._budget()

    def _budget(self) -> tuple[float, float | None]:
        """When the run started and when its time budget ends (shared by every worker)."""
        if self.plan.timeout_s is None:
            return time.time(), None
        self.redis.set(self.keys.deadline, repr(time.time() + self.plan.timeout_s), nx=True)
        deadline = float(self.redis.get(self.keys.deadline))  # type: ignore[arg-type]
        return deadline - self.plan.timeout_s, deadline

    def _fold_deadline(self, fold: int) -> float | None:
        if self.deadline is None or self.plan.timeout_s is None:
            return None
        return self.start_at + self.plan.timeout_s * (fold + 1) / len(self.windows)

    def _lost(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial whose worker died: its permit goes back (another trial runs instead)."""
        fold = int(study.study_name.rsplit("-", 1)[1])
        self.permits.give_back(trial._trial_id, fold)

    def study(self, window: Window) -> optuna.Study:
        return optuna.create_study(
            storage=self.storage,
            study_name=study_name(self.job.key, window.fold),
            direction="maximize",
            sampler=make_sampler(
                self.plan, seed_for(self.plan.seed, self.worker_index, window.fold)
            ),
            load_if_exists=True,
        )

    def fail_lost(self, study: optuna.Study) -> None:
        """Fail the trials of workers that died (their permits come back, see _lost)."""
        if isinstance(self.storage, SharedStudyStorage):
            self.storage.fail_lost_trials(study)
        # Another storage (bench/optimise.py's relational one) has Optuna's heartbeats.

    def run(self) -> WorkerOutcome:
        studies = [self.study(window) for window in self.windows]
        outcome = WorkerOutcome(trials_run=0, finished=False, cancelled=False, summary=None)
        with self.heartbeat:
            for window, study in zip(self.windows, studies, strict=True):
                self.permits.open(window.fold)
                objective = TrialObjective(
                    self.plan,
                    window.train(self.job.candles),
                    self.permits,
                    window.fold,
                    heartbeat=self.heartbeat,
                    fail_lost=self.fail_lost,
                )
                cancelled = self._run_study(study, objective, self._fold_deadline(window.fold))
                outcome.trials_run += objective.trials_run
                if cancelled:
                    outcome.cancelled = True
                    break
        outcome.finished = True
        outcome.summary = summarise(
            self.plan,
            self.job.candles,
            self.windows,
            studies,
            max_points=self.config.max_points,
        )
        return outcome

    def _run_study(
        self, study: optuna.Study, objective: TrialObjective, deadline: float | None
    ) -> bool:
        """Run trials until the study is over; True when the run was cancelled."""
        callbacks = None if self.on_trial is None else [self._after_trial]
        while True:
            if self.permits.cancelled():
                return True
            now = time.time()
            out_of_time = deadline is not None and now >= deadline
            startable = self.permits.left(objective.fold) > 0 and not self._exhausted(study)
            if startable and not out_of_time:
                study.optimize(
                    objective,
                    timeout=None if deadline is None else deadline - now,
                    callbacks=callbacks,
                    catch=(Exception,),
                    gc_after_trial=False,
                )
                if objective.cancelled:
                    return True
                continue
            # Nothing left to start here: wait for the other workers' running trials,
            # failing those whose worker died (their permits come back, see above).
            if not _running(study):
                return False
            self.fail_lost(study)
            if not isinstance(self.storage, SharedStudyStorage):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    fail_stale_trials(study)
            time.sleep(self.config.poll_s)

    def _exhausted(self, study: optuna.Study) -> bool:
        sampler = study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.on_trial is not None:
            self.on_trial(trial.number)


def run_worker(job: StudyJob) -> WorkerOutcome:
    """Entry point of a worker process (picklable: a module-level function)."""
    return Worker(job).run()
