"""Where the workers of one optimisation share its studies: an Optuna journal on Redis.

Why a journal on Redis (docs/trading.md, optimisation, has the figures): with Optuna's
relational storage on our PostgreSQL a worker spent 53-73 ms of CPU per trial (its
statements and ORM), so it cannot reach the 50 trials/s a worker must, backtest
included; on the journal, which replays an append-only log (one round trip per write
here), a trial cost 9.5-10 ms. The journal is working state: what the API shows is
written to PostgreSQL when a run is over, and the Redis keys then expire.

:class:`RedisJournal` is the log as one Redis list per optimisation (``RPUSH`` appends,
``LRANGE`` reads everything new in one round trip; Optuna's own Redis backend keeps a key
per log line and reads them one by one). :class:`SharedStudyStorage` adds what Optuna's
journal storage lacks and its relational storage has: trial heartbeats. A trial is first
stamped as it takes its permit, then every ``heartbeat_s`` seconds by its worker's
:class:`Heartbeat` thread (one per worker: Optuna's own heartbeat starts and joins a
thread for every trial, which cost a worker milliseconds per trial). Any worker starting
a trial first fails the running trials whose stamp is older than ``grace_s`` (their
worker died), each claimed by exactly one worker (``SET NX``), whose callback then
returns the lost trial's permit (:mod:`analysis_service.optimisations.permits`).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
import structlog
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from redis import Redis

KEY_PREFIX = "analysis:optimisation"
log = structlog.get_logger("optimisations")

LostTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass(frozen=True)
class StudyKeys:
    """The Redis keys of one optimisation (docs/events.md)."""

    key: str

    @property
    def prefix(self) -> str:
        return f"{KEY_PREFIX}:{self.key}"

    @property
    def journal(self) -> str:
        return f"{self.prefix}:journal"

    @property
    def beats(self) -> str:
        return f"{self.prefix}:beats"

    def lost(self, trial_id: int) -> str:
        return f"{self.prefix}:lost:{trial_id}"

    def permits(self, fold: int) -> str:
        return f"{self.prefix}:permits:{fold}"

    @property
    def held(self) -> str:
        return f"{self.prefix}:held"

    @property
    def cancel(self) -> str:
        return f"{self.prefix}:cancel"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def deadline(self) -> str:
        return f"{self.prefix}:deadline"

    def all_keys(self, folds: int) -> list[str]:
        """Every key but the per-trial claims (which expire on their own)."""
        return [
            self.journal,
            self.beats,
            self.held,
            self.cancel,
            self.workers,
            self.deadline,
            *(self.permits(fold) for fold in range(folds)),
        ]


def study_name(key: str, fold: int) -> str:
    return f"{key}:fold-{fold}"


class RedisJournal(BaseJournalBackend):
    """Optuna's journal as one Redis list: the index of a line is its log number.

    Optuna reads the log before every operation and after every write, a round trip each.
    Here a write also reads what is new in the same round trip (a pipeline of ``RPUSH`` and
    ``LRANGE``), and a read that follows another within ``fresh_s`` seconds is answered
    from what that one found. Writes still see every earlier line; only reads may lag the
    other workers by ``fresh_s`` (a sampler choosing from trials a few milliseconds old).
    """

    def __init__(self, redis: Redis, key: str, *, fresh_s: float = 0.02) -> None:
        self._redis = redis
        self._key = key
        self._fresh_s = fresh_s
        self._next = 0  # the log number after the last line read
        self._read_at = -math.inf
        self._prefetched: tuple[int, list[bytes]] | None = None

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == log_number_from:
            lines = prefetched[1]
        elif log_number_from == self._next and time.monotonic() - self._read_at < self._fresh_s:
            lines = []
        else:
            lines = self._redis.lrange(self._key, log_number_from, -1)  # type: ignore[assignment]
            self._read_at = time.monotonic()
        self._next = log_number_from + len(lines)
        for line in lines:
            yield json.loads(line)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        # The standard json module, as Optuna's backends: it keeps NaN and infinity.
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._key, *(json.dumps(log) for log in logs))
            pipe.lrange(self._key, self._next, -1)
            _, lines = pipe.execute()
        self._prefetched = (self._next, lines)
        self._read_at = time.monotonic()


class SharedStudyStorage(JournalStorage):
    """The journal storage, and the heartbeats and lost-trial claims kept beside it."""

    def __init__(
        self,
        redis: Redis,
        keys: StudyKeys,
        *,
        grace_s: float,
        on_lost: LostTrialCallback | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._grace_s = grace_s
        self._on_lost = on_lost
        super().__init__(RedisJournal(redis, keys.journal))

    def lost_trial_ids(self, study_id: int) -> list[int]:
        """Running trials of the study not stamped for the grace period, each claimed by
        this worker (no other worker gets the same one)."""
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        # The journal replays start times as naive local times.
        now = datetime.now()  # noqa: DTZ005
        # A trial younger than the grace period cannot be lost yet: no round trip.
        old = [
            t
            for t in running
            if t.datetime_start is None or (now - t.datetime_start).total_seconds() > self._grace_s
        ]
        if not old:
            return []
        beats = self._redis.hmget(self._keys.beats, [str(t._trial_id) for t in old])
        wall = time.time()
        lost = [
            t._trial_id
            for t, beat in zip(old, beats, strict=True)
            if beat is None or wall - float(beat) > self._grace_s
        ]
        # The claim expires, should its worker die before failing the trial.
        claim_s = max(30, int(self._grace_s * 3))
        worker = str(self._replay_result.worker_id)
        return [
            trial_id
            for trial_id in lost
            if self._redis.set(self._keys.lost(trial_id), worker, nx=True, ex=claim_s)
        ]

    def fail_lost_trials(self, study: optuna.Study) -> int:
        """Fail the study's lost trials this worker claims and hand each to the callback
        (as ``optuna.storages.fail_stale_trials`` does with Optuna's heartbeats)."""
        failed = 0
        for trial_id in self.lost_trial_ids(study._study_id):
            try:
                if not self.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:
                continue  # it finished after all
            failed += 1
            if self._on_lost is not None:
                self._on_lost(study, self.get_trial(trial_id))
        return failed


class Heartbeat:
    """A worker's one heartbeat thread: stamps the trial it is running, if any, every
    ``interval_s`` seconds."""

    def __init__(self, redis: Redis, keys: StudyKeys, interval_s: float) -> None:
        self.trial_id: int | None = None
        self._redis = redis
        self._keys = keys
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval_s + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval_s):
            trial_id = self.trial_id
            if trial_id is None:
                continue
            try:
                self._redis.hset(self._keys.beats, str(trial_id), repr(time.time()))
            except Exception as exc:  # a missed beat only risks the trial being run again
                log.warning("trial_heartbeat_missed", trial_id=trial_id, error=repr(exc))
