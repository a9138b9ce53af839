"""The gateway's /health: every upstream's own /health, aggregated."""

from __future__ import annotations

import httpx

from tests.gateway.stack import GatewayFactory, all_upstreams
from tests.servers import UvicornThread


async def test_health_aggregates_every_upstream(
    gateway: GatewayFactory, upstream: UvicornThread
) -> None:
    async with gateway(**all_upstreams(upstream.url)) as gw, httpx.AsyncClient() as client:
        healthy = await client.get(f"{gw.url}/health")
    assert healthy.status_code == 200
    assert healthy.json()["services"] == {
        "redis": "up",
        "market": "up",
        "user": "up",
        "trading": "up",
        "analysis": "up",
        "notification": "up",
    }
    async with gateway(market_service_urls=upstream.url) as gw, httpx.AsyncClient() as client:
        partial = await client.get(f"{gw.url}/health")
    assert partial.status_code == 503
    assert partial.json()["status"] == "unhealthy"
    assert partial.json()["services"]["market"] == "up"
    assert partial.json()["services"]["trading"] == "down"
