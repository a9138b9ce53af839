"""Rate limit: 100 a minute per user (per IP when anonymous), shared by every replica."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from redis.asyncio import Redis

from tests.factories import issue_access_token
from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.servers import UvicornThread


async def _headers(redis: Redis) -> dict[str, str]:
    token, _ = await issue_access_token(redis, uuid.uuid4())
    return {"Authorization": f"Bearer {token}"}


async def test_the_101st_request_in_a_minute_is_429_and_another_user_is_unaffected(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    alice, bob = await _headers(redis), await _headers(redis)
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        answers = await asyncio.gather(
            *(client.get(f"{gw.url}/trading/echo", headers=alice) for _ in range(100))
        )
        assert [r.status_code for r in answers] == [200] * 100
        remaining = sorted(int(r.headers["x-ratelimit-remaining"]) for r in answers)
        assert remaining == list(range(100))
        refused = await client.get(f"{gw.url}/trading/echo", headers=alice)
        other = await client.get(f"{gw.url}/trading/echo", headers=bob)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit"] == "100"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["x-ratelimit-reset"]) <= 60
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "99"


async def test_two_gateway_replicas_share_one_budget(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await _headers(redis)
    settings = {"rate_limit_per_minute": 10, **all_upstreams(upstream.url)}
    async with (
        gateway(**settings) as first,
        gateway(**settings) as second,
        httpx.AsyncClient() as client,
    ):
        statuses = []
        for i in range(12):
            gw = first if i % 2 == 0 else second
            statuses.append(
                (await client.get(f"{gw.url}/trading/echo", headers=headers)).status_code
            )
    assert statuses == [200] * 10 + [429, 429]


async def test_anonymous_callers_are_limited_per_ip(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    settings = {"rate_limit_per_minute": 3, **all_upstreams(upstream.url)}
    async with gateway(**settings) as gw, httpx.AsyncClient() as client:
        statuses = [(await client.get(f"{gw.url}/market/echo")).status_code for _ in range(4)]
        metrics = (await client.get(f"{gw.url}/metrics")).text
    assert statuses == [200, 200, 200, 429]
    assert 'gateway_rate_limited_total{upstream="market"}' in metrics
    assert 'route="/market/*"' in metrics
