"""An open breaker recovers as soon as its upstream answers its /health again, not when
its reset timeout has run out."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from tests.gateway.stack import GatewayFactory
from tests.gateway.test_upstreams import _headers, _trading_breakers, answers_200
from tests.gateway.upstream_app import create_upstream
from tests.servers import UvicornThread
from tests.waiting import eventually


async def test_a_breaker_closes_once_its_upstream_is_healthy_again_long_before_its_reset(
    gateway: GatewayFactory, redis: Redis
) -> None:
    headers = await _headers(redis)
    upstream = await UvicornThread(create_upstream("a")).__aenter__()
    port = upstream.port
    async with (
        gateway(
            trading_service_urls=upstream.url,
            rate_limit_per_minute=1000,
            # Only the health probe can end this open period within the test.
            breaker_reset_timeout_seconds=600.0,
            breaker_probe_interval_seconds=0.1,
        ) as gw,
        httpx.AsyncClient() as client,
    ):
        await upstream.__aexit__()
        for _ in range(3):
            await client.get(f"{gw.url}/trading/echo", headers=headers)
        rejected = await client.get(f"{gw.url}/trading/echo", headers=headers)
        assert "circuit breaker is open" in rejected.json()["detail"]
        # Probed every 0.1 s: a client is told to come back in a second, not in ten minutes.
        assert rejected.headers["retry-after"] == "1"

        async with UvicornThread(create_upstream("a"), port=port):
            await eventually(
                answers_200(client, f"{gw.url}/trading/echo", headers), timeout=10, interval=0.1
            )
            assert _trading_breakers(await client.get(f"{gw.url}/health")) == ["closed"]


async def test_a_healthy_upstream_whose_answers_fail_keeps_its_breaker_open(
    gateway: GatewayFactory, upstream: UvicornThread, redis: Redis
) -> None:
    headers = await _headers(redis)
    async with (
        gateway(
            trading_service_urls=upstream.url,
            breaker_reset_timeout_seconds=600.0,
            breaker_probe_interval_seconds=0.1,
        ) as gw,
        httpx.AsyncClient() as client,
    ):
        for _ in range(3):
            assert (await client.get(f"{gw.url}/trading/fail", headers=headers)).status_code == 500

        # Its /health answers 200: the next request is let through as the probe...
        probe = await eventually(_passed_through(client, f"{gw.url}/trading/fail", headers))
        assert probe.status_code == 500
        # ...and its failure opens the breaker again (which the next health probe may
        # half-open once more): it never closes on the health check alone.
        assert _trading_breakers(await client.get(f"{gw.url}/health")) != ["closed"]


def _passed_through(client: httpx.AsyncClient, url: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    async def check() -> httpx.Response | None:
        response = await client.get(url, headers=headers)
        return response if response.status_code != 503 else None

    return check
