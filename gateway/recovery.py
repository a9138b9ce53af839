"""Breaker recovery: while an instance's breaker is open, its ``/health`` is probed every
``breaker_probe_interval_seconds``; the first 200 ends the open period, so the next
request goes through as the half-open probe.

Why: the breaker alone waits out its whole reset timeout (10 s) before trying again, so
after a dependency came back the gateway kept answering 503 for seconds. The probe only
half-opens the breaker: a real request still has to succeed to close it, so a service
whose health is fine but whose answers fail keeps its breaker open.
"""

from __future__ import annotations

import asyncio

import aiohttp
import structlog

from gateway.upstreams import Instance, UpstreamRegistry
from shared.breaker import BreakerState

log = structlog.get_logger("gateway.recovery")


async def watch_open_breakers(
    registry: UpstreamRegistry, *, interval: float, limit_s: float
) -> None:
    """Forever: probe the instances whose breaker is open; half-open those that answer."""
    while True:
        await asyncio.sleep(interval)
        opened = [
            instance
            for upstream in registry.by_name.values()
            for instance in upstream.instances
            if instance.breaker.state is BreakerState.OPEN
        ]
        if not opened:
            continue
        answers = await asyncio.gather(*(_healthy(i, limit_s) for i in opened))
        for instance, healthy in zip(opened, answers, strict=True):
            if healthy:
                log.info("upstream_back", url=instance.url)
                instance.breaker.probe_now()


async def _healthy(instance: Instance, limit_s: float) -> bool:
    try:
        async with instance.client.get(
            instance.url + "/health", timeout=aiohttp.ClientTimeout(total=limit_s)
        ) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
