"""The shared event bus under outages: an entry whose handler cannot reach the database is
not the entry's fault, so it is retried after the outage, never dead-lettered for it."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import create_engine, create_sessionmaker
from shared.events import DEAD_LETTER_STREAM, Event, EventConsumer, publish
from tests.servers import free_port

STREAM = "events:test.outage"


async def test_a_database_outage_does_not_dead_letter_entries_they_apply_once_it_is_back(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    down_engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere", pool_size=1
    )
    applied: list[uuid.UUID] = []

    async def handler(event: Event, session: AsyncSession) -> None:
        applied.append(event.id)

    consumer = EventConsumer(
        redis,
        create_sessionmaker(down_engine, redis),
        group="outage-test",
        handlers={STREAM: handler},
        retry_delay_s=0.0,
    )
    await consumer.ensure_groups()
    event = Event(type="test.outage", data={}, source="test")
    await publish(redis, event, stream=STREAM)
    try:
        for _ in range(3 * consumer.max_failures):
            await consumer.process_once(block_ms=10)
    finally:
        await down_engine.dispose()

    assert await redis.xlen(DEAD_LETTER_STREAM) == 0
    assert applied == []

    consumer.sessionmaker = sessionmaker  # the database is back
    for _ in range(3):
        await consumer.process_once(block_ms=10)
    assert applied == [event.id]
    assert (await redis.xpending(STREAM, "outage-test"))["pending"] == 0
    assert await redis.hlen("events:failures:outage-test") == 0
