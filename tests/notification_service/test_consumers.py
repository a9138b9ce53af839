"""The batching consumer: a batch is one statement, and a batch with a poison entry falls
back to the shared per-entry path (good entries applied once, the poison dead-lettered)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from notification_service.consumers import BatchingConsumer, NotificationIntake
from notification_service.live.hub import LivePublisher
from notification_service.models import Notification
from notification_service.preferences import ChannelPreferences, PreferenceDirectory
from shared.db import create_engine, create_sessionmaker
from shared.events import DEAD_LETTER_STREAM, NOTIFICATION_QUEUE, Event, publish
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.servers import free_port


class RecordingPublisher(LivePublisher):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.pushed: list[tuple[uuid.UUID, bytes | str]] = []

    def push(self, user_id: uuid.UUID, message: str | bytes) -> None:
        self.pushed.append((user_id, message))

    def push_many(self, messages: object) -> None:
        self.pushed.extend(messages)  # type: ignore[arg-type]


class EveryoneKnown(PreferenceDirectory):
    def __init__(self) -> None:  # no HTTP: every user wants every channel
        pass

    def cached(self, user_id: uuid.UUID) -> ChannelPreferences | None:
        return ChannelPreferences({})

    async def lookup(self, user_id: uuid.UUID) -> ChannelPreferences | None:
        return ChannelPreferences({})


def consumer(
    redis: Redis, sessionmaker: async_sessionmaker[AsyncSession], intake: NotificationIntake
) -> BatchingConsumer:
    return BatchingConsumer(
        redis,
        sessionmaker,
        intake=intake,
        engine=sessionmaker.kw["bind"],
        group="notification",
        handlers=intake.handlers(),
        consumer="test-consumer",
        retry_delay_s=0.0,
    )


async def test_a_batch_with_repeats_and_a_poison_entry_applies_each_good_event_once(
    redis: Redis, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await create_user(session, redis)
    publisher = RecordingPublisher(redis)
    wakes: list[int] = []
    intake = NotificationIntake(EveryoneKnown(), publisher, lambda: wakes.append(1))
    worker = consumer(redis, sessionmaker, intake)
    await worker.ensure_groups()

    repeated = trade_event(user.id)
    about_it = Event(
        type="notification.requested",
        data={
            "user_id": str(user.id),
            "kind": "trade.executed",
            "title": "Filled",
            "source_event_id": str(repeated.id),
        },
        source="trading",
    )
    poison = trade_event(user.id, symbol=None)  # symbol is required: fails validation
    others = [trade_event(user.id) for _ in range(10)]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd("events:trade.executed", repeated.to_fields())  # type: ignore[arg-type]
        pipe.xadd("events:trade.executed", repeated.to_fields())  # type: ignore[arg-type]
        pipe.xadd(NOTIFICATION_QUEUE, about_it.to_fields())  # type: ignore[arg-type]
        for event in others[:5]:
            pipe.xadd("events:trade.executed", event.to_fields())  # type: ignore[arg-type]
        pipe.xadd("events:trade.executed", poison.to_fields())  # type: ignore[arg-type]
        for event in others[5:]:
            pipe.xadd("events:trade.executed", event.to_fields())  # type: ignore[arg-type]
        await pipe.execute()

    for _ in range(12):  # the first read fails as a batch, then entries retry one by one
        await worker.process_once(block_ms=10)
        await asyncio.sleep(0)
        if await redis.xlen(DEAD_LETTER_STREAM):
            break

    await session.commit()
    stored = await session.scalar(
        select(func.count()).select_from(Notification).where(Notification.user_id == user.id)
    )
    assert stored == 11  # the repeated fill once (3 entries about it) + 10 others
    dead: Any = await redis.xrange(DEAD_LETTER_STREAM)
    assert [d[1]["id"] for d in dead] == [str(poison.id)]
    assert "symbol" in dead[0][1]["error"]
    pushed_events = Counter(json.loads(message)["event_id"] for _user, message in publisher.pushed)
    assert set(pushed_events) == {str(repeated.id), *(str(e.id) for e in others)}
    assert max(pushed_events.values()) == 1
    for stream in ("events:trade.executed", NOTIFICATION_QUEUE):
        assert (await redis.xpending(stream, "notification"))["pending"] == 0
    applied = await session.scalar(text("SELECT count(*) FROM processed_events"))
    assert applied == 12  # 11 distinct good event ids + the request about the fill


async def test_a_clean_batch_is_one_statement_and_acked_together(
    redis: Redis,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    users = [await create_user(session, redis) for _ in range(3)]
    publisher = RecordingPublisher(redis)
    intake = NotificationIntake(EveryoneKnown(), publisher, lambda: None)
    worker = consumer(redis, sessionmaker, intake)
    await worker.ensure_groups()
    events = [trade_event(users[i % 3].id) for i in range(30)]
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd("events:trade.executed", event.to_fields())  # type: ignore[arg-type]
        await pipe.execute()

    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        handled = await worker.process_once(block_ms=10)
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert handled == 30
    assert len(statements) == 1  # processed ids, notifications and webhooks: one statement
    assert statements[0].lstrip().startswith("WITH input AS")
    assert len(publisher.pushed) == 30
    assert (await redis.xpending("events:trade.executed", "notification"))["pending"] == 0


async def test_a_database_outage_defers_a_batch_and_it_is_applied_once_the_database_is_back(
    redis: Redis, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user = await create_user(session, redis)
    publisher = RecordingPublisher(redis)
    intake = NotificationIntake(EveryoneKnown(), publisher, lambda: None)
    down_engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere", pool_size=1
    )
    worker = BatchingConsumer(
        redis,
        create_sessionmaker(down_engine, redis),
        intake=intake,
        engine=down_engine,
        group="notification",
        handlers=intake.handlers(),
        consumer="test-consumer",
        retry_delay_s=0.0,
    )
    await worker.ensure_groups()
    events = [trade_event(user.id) for _ in range(5)]
    for event in events:
        await publish(redis, event)
    try:
        for _ in range(3 * worker.max_failures):
            await worker.process_once(block_ms=10)
    finally:
        await down_engine.dispose()
    assert await redis.xlen(DEAD_LETTER_STREAM) == 0
    assert publisher.pushed == []

    worker.sessionmaker = sessionmaker  # the database is back
    worker.engine = sessionmaker.kw["bind"]
    for _ in range(3):
        await worker.process_once(block_ms=10)
    await session.commit()
    stored = await session.scalar(select(func.count()).select_from(Notification))
    assert stored == 5
    assert len(publisher.pushed) == 5
    assert (await redis.xpending("events:trade.executed", "notification"))["pending"] == 0


def test_a_fill_reads_the_same_from_its_event_and_from_the_engines_request() -> None:
    from notification_service.consumers import draft_requested, draft_trade
    from shared.events import Event

    user_id = uuid.uuid4()
    executed = trade_event(user_id, side="SELL", pnl="1.5")
    requested = Event(
        type="notification.requested",
        data={
            "user_id": str(user_id),
            "kind": "trade.executed",
            "title": "SELL BTC/USDT filled",
            "body": "paper sell 0.01 BTC/USDT at 50000 on sim",
            "data": executed.data,
            "source_event_id": str(executed.id),
        },
        source="trading",
    )
    from_event, from_request = draft_trade(executed), draft_requested(requested)
    assert from_request.title == from_event.title == "Sold 0.01 BTC/USDT at 50000"
    assert from_request.body == from_event.body
    assert from_request.event_id == from_event.event_id
