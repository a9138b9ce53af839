"""Every series deploy/prometheus's rules and deploy/grafana's dashboard read is on the
live /metrics of a running stack, once the paths that make them have run: requests, an
order and its events, a webhook delivery, a dead-lettered entry, a replica that is down
behind the gateway, and a client over its rate limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.deploy.promql import exported_names_used
from tests.deploy.stack import RATE_LIMIT_PER_MINUTE, Stack, client_of, paper_order, signed_up
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


async def exported_names(stack: Stack) -> set[str]:
    """Every sample name on every service's /metrics."""
    async with httpx.AsyncClient(timeout=10) as client:
        pages = await asyncio.gather(*(client.get(url + "/metrics") for url in stack.urls.values()))
    return {
        sample.name
        for page in pages
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
    }


@pytest.mark.timeout(120)
async def test_every_series_the_rules_and_the_dashboard_read_is_exported_by_the_services(
    stack: Stack,
) -> None:
    async with client_of(stack, "198.51.100.2") as gateway:
        auth = await signed_up(gateway)
        hook = await gateway.post(
            "/notifications/webhooks", json={"url": stack.webhooks.url}, headers=auth
        )
        assert hook.status_code == 201, hook.text
        placed = await gateway.post("/trading/orders", json=paper_order(), headers=auth)
        assert placed.status_code == 201, placed.text
        # One analysis replica behind the gateway is down: its calls fail over, unseen.
        for _ in range(4):
            listed = await gateway.get("/analysis/backtests", headers=auth)
            assert listed.status_code == 200, listed.text
        refused = await gateway.get("/trading/orders", params={"bogus": "1"}, headers=auth)
        assert refused.status_code == 422
    # A client over its budget.
    async with client_of(stack, "198.51.100.3") as flooder:
        answers = [
            (await flooder.get("/market/exchanges")).status_code
            for _ in range(RATE_LIMIT_PER_MINUTE + 1)
        ]
    assert answers.count(429) == 1
    # An entry no consumer can read goes to the dead letters.
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        await redis.xadd("events:trade.executed", {"type": "trade.executed", "data": "{}"})
    finally:
        await redis.aclose()

    used = exported_names_used()
    assert len(used) >= 20

    async def all_exported() -> bool:
        return used <= await exported_names(stack)

    try:
        await eventually(all_exported, timeout=30, interval=0.5)
    except AssertionError:
        absent = sorted(used - await exported_names(stack))
        pytest.fail(f"read by the rules or the dashboard, exported by no service: {absent}")
    assert stack.webhooks.deliveries  # the delivery metrics come from a real delivery
