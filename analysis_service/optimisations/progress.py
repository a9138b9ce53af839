"""Progress of a running optimisation, read from its shared journal (trials done, the
best so far); the service writes it to PostgreSQL every second and the CLI draws its
progress bar from it. Synchronous (Redis), for a worker thread."""

from __future__ import annotations

import time

from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
from redis import Redis

from analysis_service.optimisations.plan import Plan
from analysis_service.optimisations.schemas import Progress
from analysis_service.optimisations.storage import RedisJournal, StudyKeys, study_name
from analysis_service.optimisations.summary import trial_state


class ProgressReader:
    def __init__(self, redis: Redis, key: str, plan: Plan) -> None:
        self.redis = redis
        self.keys = StudyKeys(key)
        self.key = key
        self.plan = plan
        self._storage: JournalStorage | None = None

    def read(self) -> Progress:
        if self._storage is None:
            # Read every second: no need for the workers' read-ahead window.
            self._storage = JournalStorage(RedisJournal(self.redis, self.keys.journal, fresh_s=0))
        storage = self._storage
        done, fold, best_value, best_params = 0, None, None, None
        for index in range(self.plan.studies):
            try:
                study_id = storage.get_study_id_from_name(study_name(self.key, index))
            except KeyError:
                continue
            trials = storage.get_all_trials(study_id, deepcopy=False)
            counted = [t for t in trials if trial_state(t) is not None]
            if not counted and fold is not None:
                continue
            done += len(counted)
            fold = index
            complete = [t for t in counted if t.state == TrialState.COMPLETE]
            if complete:
                best = max(complete, key=lambda t: (float(t.value or 0.0), -t.number))
                best_value, best_params = best.value, dict(best.params)
            else:
                best_value, best_params = None, None
        total = self.plan.trials_total
        fraction = min(1.0, done / total) if total else 0.0
        if self.plan.timeout_s:
            raw = self.redis.get(self.keys.deadline)
            if raw is not None:
                left = float(raw) - time.time()
                fraction = max(fraction, min(1.0, 1 - left / self.plan.timeout_s))
        return Progress(
            trials_done=done,
            trials_total=total,
            fraction=round(fraction, 4),
            fold=fold if self.plan.folds else None,
            best_value=best_value,
            best_params=best_params,
        )
