"""The shared service client against ``httpx.MockTransport`` replicas: failover, retries
only where safe, a breaker per replica, the internal token, problem details as typed errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from shared.breaker import BreakerState
from shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.service_client import ServiceClient

A, B = "http://a.test", "http://b.test"
Behaviour = Callable[[httpx.Request], httpx.Response]


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"served_by": request.url.host})


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer in time", request=request)


def unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"detail": "exchange down"}, headers={"Retry-After": "7"})


class Replicas:
    """Mock replicas by host; a test swaps a host's behaviour, or queues one-off answers."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.queued: dict[str, list[Behaviour]] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.removesuffix(".test")
        self.hits[host] += 1
        self.requests.append(request)
        queued = self.queued.get(host)
        if queued:
            return queued.pop(0)(request)
        return self.behaviours[host](request)


def client(replicas: Replicas, urls: list[str] | None = None, **options: Any) -> ServiceClient:
    return ServiceClient(
        "market",
        urls or [A, B],
        caller="test",
        retry_backoff_s=0,
        transport=httpx.MockTransport(replicas),
        **options,
    )


async def test_a_replica_that_refuses_connections_is_skipped_for_the_next() -> None:
    replicas = Replicas(a=refused, b=ok)
    async with client(replicas) as market:
        assert await market.get("/market/orderbook") == {"served_by": "b.test"}
        assert await market.get("/market/orderbook") == {"served_by": "b.test"}
    # The second call started where the first succeeded: the dead replica cost one attempt.
    assert replicas.hits == {"a": 1, "b": 2}


async def test_a_replica_answering_503_is_skipped_for_the_next() -> None:
    replicas = Replicas(a=unavailable, b=ok)
    async with client(replicas) as market:
        assert await market.get("/market/ohlcv") == {"served_by": "b.test"}
    assert replicas.hits == {"a": 1, "b": 1}


async def test_a_get_is_retried_after_every_replica_failed() -> None:
    replicas = Replicas(a=ok)
    replicas.queued["a"] = [unavailable, read_timeout]
    async with client(replicas, [A], read_attempts=3) as market:
        assert await market.get("/market/orderbook") == {"served_by": "a.test"}
    assert replicas.hits == {"a": 3}


async def test_a_get_gives_up_after_its_attempts() -> None:
    replicas = Replicas(a=unavailable)
    async with client(replicas, [A], read_attempts=2) as market:
        with pytest.raises(ServiceUnavailable):
            await market.get("/market/orderbook")
    assert replicas.hits == {"a": 2}


@pytest.mark.parametrize("failure", [read_timeout, unavailable])
async def test_a_post_that_may_have_reached_a_server_is_never_sent_again(
    failure: Behaviour,
) -> None:
    replicas = Replicas(a=failure, b=ok)
    async with client(replicas, read_attempts=3) as market:
        with pytest.raises(ServiceUnavailable, match="may have been applied"):
            await market.request("POST", "/orders", json={"side": "buy"})
    assert replicas.hits == {"a": 1}


async def test_a_post_moves_to_the_next_replica_when_the_connection_was_refused() -> None:
    replicas = Replicas(a=refused, b=ok)
    async with client(replicas) as market:
        response = await market.request("POST", "/orders", json={"side": "buy"})
    assert response.json() == {"served_by": "b.test"}
    assert replicas.hits == {"a": 1, "b": 1}
    assert replicas.requests[-1].content == b'{"side":"buy"}'


async def test_each_replica_has_a_breaker_and_an_open_one_is_skipped_while_the_other_serves() -> (
    None
):
    replicas = Replicas(a=refused, b=ok)
    async with client(replicas, read_attempts=2, breaker_failures=2) as market:
        await market.get("/x")  # a refuses (1 failure), b serves
        replicas.queued["b"] = [unavailable]
        await market.get("/x")  # b fails once, a refuses again (2: open), then b serves
        assert market.breakers[A].state is BreakerState.OPEN
        assert market.breakers[B].state is BreakerState.CLOSED
        assert (
            REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "test->market@a.test"})
            == 2
        )

        replicas.queued["b"] = [unavailable]
        assert await market.get("/x") == {"served_by": "b.test"}
    assert replicas.hits["a"] == 2  # the open replica got no request


async def test_every_replica_down_is_service_unavailable_naming_the_service() -> None:
    replicas = Replicas(a=refused, b=unavailable)
    async with client(replicas, read_attempts=1) as market:
        with pytest.raises(ServiceUnavailable) as caught:
            await market.get("/x")
    error = caught.value
    assert error.service == "market"
    assert error.status == 503
    assert "market service is unavailable" in error.detail
    assert "exchange down" in error.detail
    assert error.headers["Retry-After"] == "7"  # the upstream's own hint
    assert not error.circuit_open


async def test_every_breaker_open_answers_at_once_with_their_retry_after() -> None:
    replicas = Replicas(a=refused, b=refused)
    async with client(replicas, read_attempts=1, breaker_failures=1, breaker_reset_s=30) as market:
        with pytest.raises(ServiceUnavailable):
            await market.get("/x")
        with pytest.raises(ServiceUnavailable) as caught:
            await market.get("/x")
    assert replicas.hits == {"a": 1, "b": 1}  # the second call tried nothing
    assert caught.value.circuit_open
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 30


async def test_the_internal_token_is_sent_when_given() -> None:
    replicas = Replicas(a=ok)
    async with client(replicas, [A], internal_token="s3cret") as users:
        await users.get("/user/internal/users/1")
    async with client(replicas, [A]) as anonymous:
        await anonymous.get("/x")
    assert replicas.requests[0].headers["X-Internal-Token"] == "s3cret"
    assert "X-Internal-Token" not in replicas.requests[1].headers


def problem(status: int, detail: str, **headers: str) -> Behaviour:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"type": "about:blank", "title": "t", "status": status, "detail": detail}
        return httpx.Response(
            status, json=body, headers={"content-type": "application/problem+json", **headers}
        )

    return answer


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ValidationFailed),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, ValidationFailed),
        (418, BadRequest),
    ],
)
async def test_problem_details_become_typed_errors_with_the_upstream_detail(
    status: int, error: type[AppError]
) -> None:
    replicas = Replicas(a=problem(status, "Unknown symbol 'NOPE/USDT'."))
    async with client(replicas, [A], breaker_failures=1) as market:
        with pytest.raises(error) as caught:
            await market.get("/market/ohlcv")
        assert market.breakers[A].state is BreakerState.CLOSED  # the replica is alive
    assert type(caught.value) is error
    assert caught.value.detail == "Unknown symbol 'NOPE/USDT'."
    assert replicas.hits == {"a": 1}  # an answer, not a failure: never retried


async def test_a_refused_internal_token_is_an_outage_not_the_users_401() -> None:
    replicas = Replicas(a=problem(401, "Invalid internal token."))
    async with client(replicas, [A]) as users:
        with pytest.raises(ServiceUnavailable, match="refused this service's credentials"):
            await users.get("/user/internal/users/1")
    assert replicas.hits == {"a": 1}  # an answer: not retried, the replica is alive


async def test_a_429_is_rate_limited_with_the_upstreams_retry_after() -> None:
    replicas = Replicas(a=problem(429, "Slow down.", **{"Retry-After": "12"}))
    async with client(replicas, [A]) as market:
        with pytest.raises(RateLimited) as caught:
            await market.get("/x")
    assert caught.value.headers["Retry-After"] == "12"
    assert caught.value.detail == "Slow down."


async def test_a_caller_gives_a_status_its_own_meaning() -> None:
    replicas = Replicas(a=problem(404, "No key."))
    async with client(replicas, [A]) as users:
        with pytest.raises(Forbidden, match="add one to trade live"):
            await users.get(
                "/keys/binance", errors={404: lambda _: Forbidden("No key; add one to trade live.")}
            )


async def test_an_error_without_a_json_body_still_names_the_status() -> None:
    replicas = Replicas(a=lambda request: httpx.Response(404, text="nope"))
    async with client(replicas, [A]) as market:
        with pytest.raises(NotFound, match="market service answered 404"):
            await market.get("/x")
