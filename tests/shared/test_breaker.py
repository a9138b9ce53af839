"""The circuit breaker's CLOSED -> OPEN -> HALF_OPEN -> CLOSED life cycle, on a fake clock."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from shared.breaker import BreakerState, CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def fail() -> None:
    raise ConnectionError("down")


async def ok() -> str:
    return "ok"


async def test_breaker_opens_after_consecutive_failures_and_rejects_at_once() -> None:
    breaker = CircuitBreaker("x", failure_threshold=3, reset_timeout=10, clock=Clock())
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)


async def test_half_open_breaker_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout=10, clock=clock)
    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    clock.now = 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # nobody else while it is in flight
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert await breaker.call(ok) == "ok"


async def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout=10, clock=clock)
    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    clock.now = 11
    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after == pytest.approx(10)


async def test_errors_that_are_not_the_dependencys_fault_do_not_count() -> None:
    breaker = CircuitBreaker("x", failure_threshold=1, reset_timeout=10, clock=Clock())

    async def bad_symbol() -> None:
        raise KeyError("NOPE/USDT")

    with pytest.raises(KeyError):
        await breaker.call(bad_symbol, is_failure=lambda exc: not isinstance(exc, KeyError))
    assert breaker.state is BreakerState.CLOSED


async def test_the_state_gauge_follows_the_clock_into_half_open() -> None:
    clock = Clock()
    breaker = CircuitBreaker("gauge-x", failure_threshold=1, reset_timeout=10, clock=clock)

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "gauge-x"})

    assert gauge() == 0
    with pytest.raises(ConnectionError):
        await breaker.call(fail)
    assert gauge() == 2
    clock.now = 10  # no call in between: the time alone makes it half-open
    assert gauge() == 1
    assert breaker.allow()  # the probe in flight: still half-open
    assert gauge() == 1
    breaker.record_success()
    assert gauge() == 0
