"""How many trials a study may still start: permits in Redis, taken inside each trial.

Optuna numbers trials atomically but knows no "at most N trials across every process":
``MaxTrialsCallback`` counts after a trial and lets each worker start one more, so two
workers overshoot. Here a study of ``N`` trials starts with ``N`` permits
(``analysis:optimisation:{id}:permits:{fold}``). A trial takes one as it starts, atomically
and only while the optimisation is not cancelled (one Lua script, one round trip), and
records which trial holds it; a trial that finds none left is surplus: it stops its worker
and is left out of every result. When a worker dies mid-trial, the worker that fails the
lost trial gives its permit back (exactly once: the holder's entry is deleted as it is
returned), so another trial takes its place and the study still ends with exactly ``N``
evaluated trials. Which worker runs which trial is never decided here.
"""

from __future__ import annotations

import time

from redis import Redis

from analysis_service.optimisations.storage import StudyKeys

CANCELLED = -2
NONE_LEFT = -1
UNLIMITED = 2**31

# KEYS: cancel flag, permits, holders, heartbeats; ARGV: trial id, fold, limited (1/0),
# now (the trial's first heartbeat, in the same round trip).
_TAKE = """
if redis.call('exists', KEYS[1]) == 1 then return -2 end
if ARGV[3] == '0' then
  redis.call('hset', KEYS[4], ARGV[1], ARGV[4])
  return 2147483648
end
local left = tonumber(redis.call('get', KEYS[2]) or '0')
if left <= 0 then return -1 end
redis.call('decr', KEYS[2])
redis.call('hset', KEYS[3], ARGV[1], ARGV[2])
redis.call('hset', KEYS[4], ARGV[1], ARGV[4])
return left - 1
"""
# KEYS: holders, permits; ARGV: trial id.
_GIVE_BACK = """
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then
  redis.call('incr', KEYS[2])
  return 1
end
return 0
"""


class TrialPermits:
    def __init__(self, redis: Redis, keys: StudyKeys, *, limit: int | None) -> None:
        self._redis = redis
        self._keys = keys
        self.limit = limit
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    def open(self, fold: int) -> None:
        """Create the fold's permits once (every worker calls it; the first one sets them)."""
        if self.limit is not None:
            self._redis.set(self._keys.permits(fold), self.limit, nx=True)

    def take(self, trial_id: int, fold: int) -> int:
        """Permits left after taking one for this trial (>= 0), or NONE_LEFT / CANCELLED;
        a trial that may start gets its first heartbeat."""
        keys = [self._keys.cancel, self._keys.permits(fold), self._keys.held, self._keys.beats]
        limited = "0" if self.limit is None else "1"
        args: list[int | str] = [trial_id, fold, limited, repr(time.time())]
        return int(self._take(keys=keys, args=args))

    def give_back(self, trial_id: int, fold: int) -> bool:
        """Return a lost trial's permit; False when it held none (or it was returned)."""
        keys = [self._keys.held, self._keys.permits(fold)]
        return bool(self._give_back(keys=keys, args=[trial_id]))

    def left(self, fold: int) -> int:
        """Permits not taken yet (UNLIMITED without a trial count)."""
        if self.limit is None:
            return UNLIMITED
        raw = self._redis.get(self._keys.permits(fold))
        return int(raw) if raw is not None else self.limit

    def cancelled(self) -> bool:
        return bool(self._redis.exists(self._keys.cancel))

    def cancel(self) -> None:
        self._redis.set(self._keys.cancel, 1)
