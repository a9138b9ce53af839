"""The event bus (docs/events.md) on real Redis Streams and PostgreSQL."""

from __future__ import annotations

import json
import uuid

from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import commit, create_engine, create_sessionmaker
from shared.events import (
    DEAD_LETTER_STREAM,
    Event,
    EventConsumer,
    OutboxEntry,
    prune_processed_events,
    publish,
    relay_outbox,
    stage,
    stream_for,
)
from tests.servers import free_port
from tests.waiting import eventually

STREAM = stream_for("pair.listed")


async def record_pair(event: Event, session: AsyncSession) -> None:
    """A real effect: one trading_pairs row per event."""
    await session.execute(
        text("INSERT INTO trading_pairs (symbol, base, exchange) VALUES (:s, :b, 'test')"),
        {"s": event.data["symbol"], "b": event.data["symbol"].split("/")[0]},
    )


async def count_pairs(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT count(*) FROM trading_pairs")) or 0)


def consumer(redis: Redis, sessionmaker, handler=record_pair, **kwargs) -> EventConsumer:
    kwargs.setdefault("block_ms", 50)
    return EventConsumer(
        redis, sessionmaker, group="test-service", handlers={STREAM: handler}, **kwargs
    )


async def test_an_event_staged_in_a_transaction_is_published_after_commit_and_applied(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, session: AsyncSession
) -> None:
    worker = consumer(redis, sessionmaker)
    await worker.ensure_groups()
    async with sessionmaker() as tx:
        stage(tx, Event(type="pair.listed", data={"symbol": "BTC/USDT"}, source="test"))
        assert await redis.xlen(STREAM) == 0  # nothing leaves before the commit
        await commit(tx)
    assert await redis.xlen(STREAM) == 1
    assert await worker.process_once() == 1
    assert await count_pairs(session) == 1
    pending = await redis.xpending(STREAM, "test-service")
    assert pending["pending"] == 0  # acked after the effect committed
    assert await session.scalar(select(func.count()).select_from(OutboxEntry)) == 0


async def test_an_entry_left_unacked_by_a_dead_consumer_is_reclaimed_and_applied_once(
    sessionmaker, redis: Redis, session: AsyncSession
) -> None:
    patient = consumer(redis, sessionmaker, claim_idle_ms=60_000)
    worker = consumer(redis, sessionmaker, claim_idle_ms=100)
    await worker.ensure_groups()
    await publish(redis, Event(type="pair.listed", data={"symbol": "ETH/USDT"}, source="test"))
    # A consumer reads the entry and dies before acking it.
    taken = await redis.xreadgroup("test-service", "dead-consumer", {STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 1
    assert await patient.process_once(block_ms=10) == 0  # not idle long enough for it
    assert await eventually(lambda: worker.process_once(block_ms=10)) == 1
    assert await count_pairs(session) == 1
    assert (await redis.xpending(STREAM, "test-service"))["pending"] == 0


async def test_a_poison_entry_is_dead_lettered_after_five_failures(
    sessionmaker, redis: Redis
) -> None:
    attempts = 0

    async def explode(event: Event, session: AsyncSession) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("cannot handle this")

    worker = consumer(redis, sessionmaker, handler=explode, retry_delay_s=0.0)
    await worker.ensure_groups()
    await publish(redis, Event(type="pair.listed", data={"symbol": "BAD/USDT"}, source="test"))
    for _ in range(10):
        await worker.process_once(block_ms=10)
    assert attempts == 5
    dead = await redis.xrange(DEAD_LETTER_STREAM)
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields["dead_stream"] == STREAM
    assert fields["dead_group"] == "test-service"
    assert "cannot handle this" in fields["error"]
    assert json.loads(fields["data"]) == {"symbol": "BAD/USDT"}
    assert (await redis.xpending(STREAM, "test-service"))["pending"] == 0


async def test_a_failed_entry_is_retried_and_applied_when_the_handler_recovers(
    sessionmaker, redis: Redis, session: AsyncSession
) -> None:
    failures = 2

    async def flaky(event: Event, session: AsyncSession) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("database blip")
        await record_pair(event, session)

    worker = consumer(redis, sessionmaker, handler=flaky, retry_delay_s=0.0)
    await worker.ensure_groups()
    await publish(redis, Event(type="pair.listed", data={"symbol": "SOL/USDT"}, source="test"))
    for _ in range(4):
        await worker.process_once(block_ms=10)
    assert await count_pairs(session) == 1
    assert await redis.xlen(DEAD_LETTER_STREAM) == 0


async def test_a_duplicate_event_id_has_one_effect(
    sessionmaker, redis: Redis, session: AsyncSession
) -> None:
    worker = consumer(redis, sessionmaker)
    await worker.ensure_groups()
    event = Event(type="pair.listed", data={"symbol": "XRP/USDT"}, source="test")
    await publish(redis, event)
    await publish(redis, event)  # e.g. the outbox relay re-sent it
    assert await worker.process_once() == 2
    assert await count_pairs(session) == 1
    assert (await redis.xpending(STREAM, "test-service"))["pending"] == 0


async def test_events_left_in_the_outbox_when_redis_was_down_are_relayed_later(
    engine, redis: Redis, session: AsyncSession
) -> None:
    no_redis = create_sessionmaker(engine, None)  # the fast path cannot publish
    async with no_redis() as tx:
        stage(tx, Event(type="pair.listed", data={"symbol": "ADA/USDT"}, source="test"))
        await tx.commit()
    assert await redis.xlen(STREAM) == 0
    assert await session.scalar(select(func.count()).select_from(OutboxEntry)) == 1
    relayed = await relay_outbox(create_sessionmaker(engine, redis), redis, older_than_s=0)
    assert relayed == 1
    assert await redis.xlen(STREAM) == 1
    session.expire_all()
    assert await session.scalar(select(func.count()).select_from(OutboxEntry)) == 0
    entry = (await redis.xrange(STREAM))[0][1]
    assert Event.from_fields(entry).data == {"symbol": "ADA/USDT"}


async def test_ids_of_events_applied_long_ago_are_forgotten_and_recent_ones_kept(
    sessionmaker, redis: Redis, session: AsyncSession
) -> None:
    worker = consumer(redis, sessionmaker)
    await worker.ensure_groups()
    old, recent = (
        Event(type="pair.listed", data={"symbol": s}, source="test") for s in ("A/B", "C/D")
    )
    await publish(redis, old)
    await publish(redis, recent)
    assert await worker.process_once() == 2
    await session.execute(
        text(
            "UPDATE processed_events SET processed_at = now() - interval '8 days'"
            " WHERE event_id = :id"
        ),
        {"id": old.id},
    )
    await session.commit()

    assert await prune_processed_events(sessionmaker, keep_days=7, batch=1) == 1

    kept = await session.scalars(text("SELECT event_id FROM processed_events"))
    assert list(kept) == [recent.id]
    await publish(redis, recent)  # a late duplicate of a recent event is still a no-op
    assert await worker.process_once() == 1
    assert await count_pairs(session) == 2


OUTAGE_STREAM = "events:test.outage"


async def test_a_database_outage_does_not_dead_letter_entries_they_apply_once_it_is_back(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # A handler that cannot reach the database is not the entry's fault: it is retried
    # after the outage, never dead-lettered for it.
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
        handlers={OUTAGE_STREAM: handler},
        retry_delay_s=0.0,
    )
    await consumer.ensure_groups()
    event = Event(type="test.outage", data={}, source="test")
    await publish(redis, event, stream=OUTAGE_STREAM)
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
    assert (await redis.xpending(OUTAGE_STREAM, "outage-test"))["pending"] == 0
    assert await redis.hlen("events:failures:outage-test") == 0
