"""Where the workers of one optimisation share its studies: an Optuna journal on Redis.

Why a journal on Redis (docs/trading.md, optimisation, has the figures): Optuna's
relational storage on our PostgreSQL needs a dozen round trips per trial and ran a
trivial objective at 7-38 trials/s here, below the 50 trials/s a worker must reach with
the backtest included; its journal storage replays an append-only log instead, one
append and one read per write, and ran the same objective at 200-1,000 trials/s on our
Redis. The journal is working state: what the API shows is written to PostgreSQL when a
study finishes, and the Redis keys then expire.

:class:`RedisJournal` is the log as one Redis list per optimisation (``RPUSH`` appends,
``LRANGE`` reads everything new in one round trip; Optuna's own Redis backend keeps a key
per log line and reads them one by one). :class:`SharedStudyStorage` adds what Optuna's
journal storage lacks and its relational storage has: trial heartbeats. A worker's
heartbeat thread stamps its running trial every ``heartbeat_s`` seconds; any worker
starting a trial first fails the running trials whose stamp is older than ``grace_s``
(their worker died), each claimed by exactly one worker (``SET NX``), whose callback
then returns the lost trial's permit (:mod:`analysis_service.optimisations.permits`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from redis import Redis

KEY_PREFIX = "analysis:optimisation"

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


class SharedStudyStorage(JournalStorage, BaseHeartbeat):
    """The journal storage with heartbeats and lost-trial claims kept in Redis."""

    def __init__(
        self,
        redis: Redis,
        keys: StudyKeys,
        *,
        heartbeat_s: int,
        grace_s: float,
        on_lost: LostTrialCallback | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._heartbeat_s = heartbeat_s
        self._grace_s = grace_s
        self._on_lost = on_lost
        super().__init__(RedisJournal(redis, keys.journal))

    def record_heartbeat(self, trial_id: int) -> None:
        self._redis.hset(self._keys.beats, str(trial_id), repr(time.time()))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        # The journal replays start times as naive local times.
        now = datetime.now()  # noqa: DTZ005
        # A trial younger than the grace period cannot be stale yet: no round trip.
        old = [
            t
            for t in running
            if t.datetime_start is None or (now - t.datetime_start).total_seconds() > self._grace_s
        ]
        if not old:
            return []
        beats = self._redis.hmget(self._keys.beats, [str(t._trial_id) for t in old])
        wall = time.time()
        stale = [
            t._trial_id
            for t, beat in zip(old, beats, strict=True)
            if beat is None or wall - float(beat) > self._grace_s
        ]
        # One worker claims each lost trial (the claim expires, should it die meanwhile).
        claim_s = max(30, int(self._grace_s * 3))
        return [
            trial_id
            for trial_id in stale
            if self._redis.set(self._keys.lost(trial_id), self.worker_id, nx=True, ex=claim_s)
        ]

    def get_heartbeat_interval(self) -> int:
        return self._heartbeat_s

    def get_heartbeat_stale_trial_callback(self) -> LostTrialCallback | None:
        return self._on_lost

    @property
    def worker_id(self) -> str:
        return str(self._replay_result.worker_id)


def open_storage(
    redis: Redis,
    key: str,
    *,
    heartbeat_s: int,
    grace_s: float,
    on_lost: LostTrialCallback | None = None,
) -> BaseStorage:
    return SharedStudyStorage(
        redis, StudyKeys(key), heartbeat_s=heartbeat_s, grace_s=grace_s, on_lost=on_lost
    )
