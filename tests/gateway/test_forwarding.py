"""X-Forwarded-For is believed only from the proxies in TRUSTED_PROXIES (none by default):
a client cannot rotate it for fresh per-address budgets, and upstreams hear the one
address the gateway believes."""

from __future__ import annotations

import httpx

from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.servers import ServiceProcess, UvicornThread


async def test_a_client_rotating_x_forwarded_for_shares_one_anonymous_budget(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    async with (
        gateway(**all_upstreams(upstream.url), rate_limit_per_minute=3) as gw,
        httpx.AsyncClient() as client,
    ):
        answers = [
            await client.get(
                f"{gw.url}/market/echo", headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            for n in range(4)
        ]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    # The upstream hears the peer's address, not what the client wrote.
    assert dict(answers[0].json()["headers"])["x-forwarded-for"] == "127.0.0.1"


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    async with (
        gateway(
            **all_upstreams(upstream.url), rate_limit_per_minute=2, trusted_proxies="127.0.0.1"
        ) as gw,
        httpx.AsyncClient() as client,
    ):

        async def get(forwarded_for: str) -> httpx.Response:
            return await client.get(
                f"{gw.url}/market/echo", headers={"X-Forwarded-For": forwarded_for}
            )

        first = [await get("spoofed, 198.51.100.1") for _ in range(3)]
        second = await get("198.51.100.2")

    assert [r.status_code for r in first] == [200, 200, 429]
    assert second.status_code == 200
    # The rightmost address the trusted proxy vouches for, and only that, goes upstream.
    assert dict(first[0].json()["headers"])["x-forwarded-for"] == "198.51.100.1"


async def test_the_served_gateway_ignores_x_forwarded_for_from_loopback(
    upstream: UvicornThread,
) -> None:
    # As `tradebot serve gateway` runs it: uvicorn would believe any loopback peer.
    env = {"RATE_LIMIT_PER_MINUTE": "3", "MARKET_SERVICE_URLS": upstream.url}
    async with ServiceProcess("gateway", env=env) as gw, httpx.AsyncClient() as client:
        answers = [
            await client.get(
                f"{gw.url}/market/echo", headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            for n in range(4)
        ]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
