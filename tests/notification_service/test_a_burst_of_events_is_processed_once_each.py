"""10,000 events published in one burst are all processed, none twice (stored and pushed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.main import create_app
from notification_service.models import Notification
from shared.redis import create_redis
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.notification_service.fakes import FakeUserService
from tests.notification_service.settings import make_settings
from tests.notification_service.settled import entries_handled, request_marker
from tests.servers import UvicornThread
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

EVENTS = 10_000
STREAM = "events:trade.executed"


async def test_ten_thousand_events_in_a_burst_are_all_processed_none_twice(
    session: AsyncSession,
    redis: Redis,
    redis_url: str,
    users: FakeUserService,
    request: pytest.FixtureRequest,
) -> None:
    people = [await create_user(session, redis) for _ in range(10)]
    for person in people:
        users.preferences[str(person.id)] = {}
    settings = make_settings(users.url, preferences_cache_ttl_s=60.0)

    pushes: Counter[str] = Counter()
    channels = {f"channel:notifications:{p.id}" for p in people}
    listener = create_redis(redis_url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("channel:notifications:*")

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            # Pub/sub is global to the Redis server, not per database: count our users only.
            if message is not None and message["channel"] in channels:
                pushes[json.loads(message["data"])["event_id"]] += 1

    listening = asyncio.create_task(listen())
    try:
        async with UvicornThread(create_app(settings)):
            events = [trade_event(people[i % len(people)].id) for i in range(EVENTS)]
            started = time.perf_counter()
            async with redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(STREAM, event.to_fields())  # type: ignore[arg-type]
                await pipe.execute()
            published = time.perf_counter() - started

            async def all_stored() -> bool:
                await session.commit()
                stored = await session.scalar(select(func.count()).select_from(Notification))
                return stored == EVENTS

            await eventually(all_stored, timeout=110, interval=0.1)
            took = time.perf_counter() - started
            await eventually(lambda: _at_least(pushes, EVENTS), timeout=10)
            # A push queued after every entry was handled comes through after any
            # duplicate could have.
            await entries_handled(redis, STREAM)
            marker = await request_marker(redis, people[0].id)
            await eventually(lambda: _at_least(pushes, EVENTS + 1))
            assert pushes.pop(str(marker.id)) == 1
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await pubsub.aclose()
        await listener.aclose()

    # Straight to the terminal (not the captured output): the figure is part of the report.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    assert reporter is not None
    reporter.write_line(
        f"[burst] {EVENTS} events: published in {published:.2f}s, all stored in "
        f"{took:.2f}s ({EVENTS / took:,.0f} events/s through the consumer group)"
    )
    applied = await session.scalar(text("SELECT count(*) FROM processed_events"))
    assert applied == EVENTS + 1  # and the marker
    assert set(pushes) == {str(e.id) for e in events}
    assert max(pushes.values()) == 1  # pushed once each, none twice
    distinct = await session.scalar(select(func.count(func.distinct(Notification.event_id))))
    assert distinct == EVENTS + 1  # and the marker


async def _at_least(pushes: Counter[str], n: int) -> bool:
    return len(pushes) >= n
