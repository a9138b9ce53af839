"""The gateway's /health: each upstream is "up" when one of its instances answers its own
/health with 200; breaker states of every instance are listed alongside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.upstreams import Upstream, UpstreamRegistry


def upstream_check(upstream: Upstream, timeout: float) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        results = await asyncio.gather(
            *(_probe(instance.client, instance.url, timeout) for instance in upstream.instances),
            return_exceptions=True,
        )
        if not any(result is True for result in results):
            raise ConnectionError(f"no instance of {upstream.name} is healthy")

    return check


async def _probe(client: aiohttp.ClientSession, url: str, limit_s: float) -> bool:
    async with client.get(url + "/health", timeout=aiohttp.ClientTimeout(total=limit_s)) as r:
        return r.status == 200


def breaker_details(registry: UpstreamRegistry) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def details() -> dict[str, Any]:
        return {
            "upstreams": {
                name: upstream.breaker_states() for name, upstream in registry.by_name.items()
            }
        }

    return details
