"""Breakers and round-robin over upstream instances, with upstreams stopped and restarted."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
from redis.asyncio import Redis

from tests.factories import issue_access_token
from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.gateway.upstream_app import create_upstream
from tests.servers import UvicornThread
from tests.waiting import eventually


async def _headers(redis: Redis) -> dict[str, str]:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}


def answers_200(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> Callable[[], Awaitable[bool]]:
    """A check for `eventually`: does ``url`` answer 200 now?"""

    async def check() -> bool:
        return (await client.get(url, headers=headers)).status_code == 200

    return check


def _trading_breakers(health: httpx.Response) -> list[str]:
    return [i["breaker"] for i in health.json()["upstreams"]["trading"]]


async def test_a_killed_upstream_opens_the_breaker_and_a_restart_closes_it(
    gateway: GatewayFactory, redis: Redis
) -> None:
    headers = await _headers(redis)
    upstream = await UvicornThread(create_upstream("a")).__aenter__()
    port = upstream.port
    async with (
        gateway(trading_service_urls=upstream.url, rate_limit_per_minute=1000) as gw,
        httpx.AsyncClient() as client,
    ):
        assert (await client.get(f"{gw.url}/trading/echo", headers=headers)).status_code == 200
        await upstream.__aexit__()

        failing = [await client.get(f"{gw.url}/trading/echo", headers=headers) for _ in range(3)]
        assert {r.status_code for r in failing} <= {502, 503}
        assert all("retry-after" in r.headers or r.status_code == 502 for r in failing)
        rejected = await client.get(f"{gw.url}/trading/echo", headers=headers)
        assert rejected.status_code == 503
        assert "circuit breaker is open" in rejected.json()["detail"]
        assert int(rejected.headers["retry-after"]) >= 1
        health = await client.get(f"{gw.url}/health")
        assert _trading_breakers(health) == ["open"]
        metrics = (await client.get(f"{gw.url}/metrics")).text
        assert 'gateway_breaker_rejected_total{upstream="trading"}' in metrics

        async with UvicornThread(create_upstream("a"), port=port):
            # Rejected until the breaker's cool-down lets a probe through; that one passes.
            await eventually(answers_200(client, f"{gw.url}/trading/echo", headers), interval=0.25)
            health = await client.get(f"{gw.url}/health")
            assert _trading_breakers(health) == ["closed"]


async def test_upstream_5xx_answers_are_passed_through_and_count_against_the_breaker(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await _headers(redis)
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        answers = [await client.get(f"{gw.url}/trading/fail", headers=headers) for _ in range(3)]
        assert [r.status_code for r in answers] == [500, 500, 500]
        assert answers[0].content == b"upstream broke"
        assert (await client.get(f"{gw.url}/trading/echo", headers=headers)).status_code == 503
        await eventually(answers_200(client, f"{gw.url}/trading/echo", headers), interval=0.25)


async def test_round_robin_spreads_over_two_instances_and_skips_a_dead_one(
    gateway: GatewayFactory, redis: Redis
) -> None:
    headers = await _headers(redis)
    first = await UvicornThread(create_upstream("a")).__aenter__()
    second = await UvicornThread(create_upstream("b")).__aenter__()
    try:
        async with (
            gateway(trading_service_urls=f"{first.url},{second.url}") as gw,
            httpx.AsyncClient() as client,
        ):
            served: Counter[str] = Counter()
            for _ in range(10):
                response = await client.get(f"{gw.url}/trading/echo", headers=headers)
                served[response.json()["instance"]] += 1
            assert served == {"a": 5, "b": 5}

            await second.__aexit__()
            after = [await client.get(f"{gw.url}/trading/echo", headers=headers) for _ in range(10)]
            assert [r.status_code for r in after] == [200] * 10
            assert {r.json()["instance"] for r in after} == {"a"}
            health = await client.get(f"{gw.url}/health")
            assert _trading_breakers(health) == ["closed", "open"]
            assert health.json()["services"]["trading"] == "up"
    finally:
        await first.__aexit__()
        await second.__aexit__()
