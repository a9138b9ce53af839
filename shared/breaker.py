"""Circuit breaker with the original design's states CLOSED / OPEN / HALF_OPEN.

CLOSED counts consecutive failures and opens at ``failure_threshold``. OPEN rejects at
once until ``reset_timeout`` has passed, then becomes HALF_OPEN and lets exactly one probe
through: its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import enum
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import Gauge

T = TypeVar("T")

BREAKER_STATE = Gauge("circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["breaker"])


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _gauge_value(breaker: CircuitBreaker | None) -> float:
    return 0 if breaker is None else _GAUGE_VALUE[breaker.state]


class CircuitOpenError(Exception):
    """Raised instead of calling while the breaker is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        # Read when scraped: OPEN turns HALF_OPEN by the clock alone, with no call to
        # update a stored value (it showed open while half-open).
        own = weakref.ref(self)
        BREAKER_STATE.labels(name).set_function(lambda: _gauge_value(own()))

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def retry_after(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go through now? In HALF_OPEN only one probe at a time may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def probe_now(self) -> None:
        """End the open period early: the next call goes through as the half-open probe
        (a health check saw the dependency answer again)."""
        if self._opened_at is not None and not self._probe_in_flight:
            self._opened_at = min(self._opened_at, self._clock() - self.reset_timeout)

    def record_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probe_in_flight = False

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        is_failure: Callable[[BaseException], bool] = lambda _exc: True,
    ) -> T:
        """Run ``fn`` through the breaker; exceptions for which ``is_failure`` is false
        (e.g. a bad symbol) pass through without counting against the dependency."""
        if not self.allow():
            raise CircuitOpenError(self.name, self.retry_after)
        try:
            result = await fn()
        except BaseException as exc:
            if is_failure(exc):
                self.record_failure()
            else:
                self.record_success()
            raise
        self.record_success()
        return result
