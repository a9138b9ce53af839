"""The event bus on Redis Streams (docs/events.md).

Publishing: a service stages an event in the ``event_outbox`` table inside the transaction
that makes it true (:func:`stage`); once that transaction has committed (an after-commit
hook, :func:`shared.db.after_commit`) it is XADDed to ``events:{type}`` and its row
deleted; a transaction that rolls back sends nothing. If Redis is down at that moment the
row stays and :func:`relay_outbox` (a loop every service with a database runs) publishes it
later, so an event is never lost, only possibly sent twice; consumers are idempotent by
event id. Code with no transaction publishes directly (:func:`publish`).

Consuming (:class:`EventConsumer`): one consumer group per consuming service; the handler
runs in a database transaction that also records ``(group, event id)`` in
``processed_events``, so a duplicate id has no second effect; the entry is acked after that
commit. What one read returns goes to :meth:`EventConsumer.handle_batch`, which a subclass
may override to apply a batch at once. Entries pending on a dead consumer are taken over
with XAUTOCLAIM; an entry whose handler failed ``max_failures`` times moves to
``events:dead-letter`` with its error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import structlog
from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import BigInteger, DateTime, String, delete, func, inspect, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared import tracing
from shared.cancellation import raise_if_cancelling
from shared.db import Base, after_commit, commit

log = structlog.get_logger("events")

DEAD_LETTER_STREAM = "events:dead-letter"
NOTIFICATION_QUEUE = "queue:notifications"
DEFAULT_MAXLEN = 100_000

# Event types (docs/events.md; more may be added as noun.verb).
TRADE_EXECUTED = "trade.executed"
MARKET_DATA_UPDATED = "market.data.updated"
STRATEGY_TRIGGERED = "strategy.triggered"
RISK_LIMIT_EXCEEDED = "risk.limit.exceeded"
BOT_FAILED = "bot.failed"
NOTIFICATION_REQUESTED = "notification.requested"

EVENTS_HANDLED = Counter(
    "events_handled_total", "Stream entries handled", ["group", "stream", "outcome"]
)
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Stream entries moved to the dead-letter stream",
    ["group", "stream"],
)

# A group's backlog, sampled by its consumers (XINFO GROUPS) every BACKLOG_SAMPLE_S.
EVENTS_LAG = Gauge(
    "events_consumer_lag",
    "Entries of a stream not yet delivered to the consumer group",
    ["group", "stream"],
)
EVENTS_PENDING = Gauge(
    "events_consumer_pending",
    "Entries delivered to the consumer group and not yet acknowledged",
    ["group", "stream"],
)
BACKLOG_SAMPLE_S = 5.0


def stream_for(event_type: str) -> str:
    return f"events:{event_type}"


@dataclass(frozen=True)
class Event:
    """One event: the fields of a stream entry, ``id`` being the idempotency key."""

    type: str
    data: dict[str, Any]
    source: str
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_fields(self) -> dict[str, str]:
        return {
            "id": str(self.id),
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "source": self.source,
            # orjson (several events per fill on the order path); datetimes and other
            # non-JSON values become str() as before, NaN/inf become null.
            "data": orjson.dumps(
                self.data, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME
            ).decode(),
        }

    def envelope(self) -> dict[str, str]:
        """The stream entry's fields as published: the event and, when this process traces,
        the context of the span that produced it (``traceparent``, shared/tracing.py), so
        the consumers' spans join the producer's trace (the outbox keeps it too)."""
        fields = self.to_fields()
        tracing.inject(fields)
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str | bytes, str | bytes]) -> Event:
        f = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            id=uuid.UUID(f["id"]),
            type=f["type"],
            occurred_at=datetime.fromisoformat(f["occurred_at"]),
            source=f.get("source", ""),
            data=orjson.loads(f.get("data") or "{}"),
        )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class OutboxEntry(Base):
    """An event committed with its transaction, waiting to be XADDed."""

    __tablename__ = "event_outbox"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(200))
    fields: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProcessedEvent(Base):
    """Which consumer group has already applied which event id."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


async def publish(
    redis: Redis, event: Event, *, stream: str | None = None, maxlen: int = DEFAULT_MAXLEN
) -> str:
    """XADD one event now (for code that has no transaction to wait for)."""
    entry_id = await redis.xadd(
        stream or stream_for(event.type),
        event.envelope(),  # type: ignore[arg-type]
        maxlen=maxlen,
        approximate=True,
    )
    return _text(entry_id)


_STAGED = "staged_events"  # session.info key of the session's _StagedEvents


def stage(session: AsyncSession, event: Event, *, stream: str | None = None) -> None:
    """Add an event to the session's transaction; it is published after the commit."""
    entry = OutboxEntry(stream=stream or stream_for(event.type), fields=event.envelope())
    session.add(entry)
    outbox: _StagedEvents | None = session.info.get(_STAGED)
    if outbox is None:
        outbox = session.info[_STAGED] = _StagedEvents(session)
    outbox.entries.append(entry)
    after_commit(session, outbox.publish)  # once per transaction however many are staged


def request_notification(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    body: str,
    data: Mapping[str, object],
    source_event_id: uuid.UUID,
    source: str,
) -> None:
    """Stage a ``notification.requested`` entry on ``queue:notifications`` for a user
    (docs/events.md); the notification service keeps one per (user, source event id)."""
    stage(
        session,
        Event(
            type=NOTIFICATION_REQUESTED,
            data={
                "user_id": str(user_id),
                "kind": kind,
                "title": title,
                "body": body,
                "data": dict(data),
                "source_event_id": str(source_event_id),
            },
            source=source,
        ),
        stream=NOTIFICATION_QUEUE,
    )


class _StagedEvents:
    """A session's outbox entries waiting for their transaction's commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.entries: list[OutboxEntry] = []

    async def publish(self) -> None:
        """XADD what the committed transaction staged and drop it from the outbox.

        A Redis failure leaves the rows for :func:`relay_outbox`; it never fails the caller,
        whose data is already committed.
        """
        # Entries of a transaction that rolled back are no longer persistent: not sent.
        staged = [entry for entry in self.entries if inspect(entry).persistent]
        self.entries.clear()
        session = self.session
        redis: Redis | None = session.info.get("redis")
        if not staged or redis is None:
            return
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for entry in staged:
                    pipe.xadd(entry.stream, entry.fields, maxlen=DEFAULT_MAXLEN, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
            # Losing this delete in a crash only makes the relay send the events again
            # (consumers are idempotent), so it need not wait for the WAL flush.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await session.execute(
                delete(OutboxEntry).where(OutboxEntry.seq.in_([e.seq for e in staged]))
            )
            # Plain commit: the outbox's own bookkeeping, not the caller's commit (whose
            # time COMMITTED_AT keeps).
            await session.commit()
        except Exception as exc:
            log.warning("outbox_publish_deferred", error=repr(exc), count=len(staged))
            await session.rollback()


async def relay_outbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    *,
    older_than_s: float = 2.0,
    batch: int = 500,
) -> int:
    """Publish outbox rows the fast path left behind; returns how many went out."""
    async with sessionmaker() as session:
        rows = (
            await session.scalars(
                select(OutboxEntry)
                .where(
                    OutboxEntry.created_at
                    < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s)
                )
                .order_by(OutboxEntry.seq)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not rows:
            return 0
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.xadd(row.stream, row.fields, maxlen=DEFAULT_MAXLEN, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()
        await session.execute(delete(OutboxEntry).where(OutboxEntry.seq.in_([r.seq for r in rows])))
        await commit(session)
        return len(rows)


async def run_outbox_relay(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, *, interval_s: float = 1.0
) -> None:
    """Loop of :func:`relay_outbox` for a service's lifespan; survives outages."""
    while True:
        try:
            await relay_outbox(sessionmaker, redis)
        except Exception as exc:
            raise_if_cancelling()
            log.warning("outbox_relay_failed", error=repr(exc))
        await asyncio.sleep(interval_s)


async def prune_processed_events(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    keep_days: float,
    batch: int = 10_000,
) -> int:
    """Forget the ids of events applied more than ``keep_days`` ago, ``batch`` rows per
    transaction; returns how many. An entry comes back only while it is in its stream or
    pending on a consumer (minutes to hours), so days of ids keep every duplicate a no-op,
    and the table no longer grows by every event every consumer ever applied."""
    deleted = 0
    while True:
        async with sessionmaker() as session:
            result = await session.execute(
                text(
                    "DELETE FROM processed_events WHERE ctid IN (SELECT ctid FROM"
                    " processed_events WHERE processed_at < now() - make_interval(secs => :age)"
                    " LIMIT :batch)"
                ),
                {"age": keep_days * 86_400, "batch": batch},
            )
            await commit(session)
        count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < batch:
            return deleted


async def run_processed_events_pruner(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    keep_days: float,
    interval_s: float = 600.0,
) -> None:
    """Loop of :func:`prune_processed_events` for a service's lifespan; survives outages."""
    while True:
        try:
            deleted = await prune_processed_events(sessionmaker, keep_days=keep_days)
            if deleted:
                log.info("processed_events_pruned", count=deleted, keep_days=keep_days)
        except Exception as exc:
            raise_if_cancelling()
            log.warning("processed_events_prune_failed", error=repr(exc))
        await asyncio.sleep(interval_s)


Handler = Callable[[Event, AsyncSession], Awaitable[None]]


class StreamEntry(NamedTuple):
    """One entry as read from a stream: the fields are still raw (see Event.from_fields)."""

    stream: str
    id: str
    fields: Mapping[Any, Any]


def is_outage(exc: BaseException) -> bool:
    """A dependency being unreachable (connection refused or lost, timeouts), as opposed to
    an entry its handler cannot apply."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, OSError | TimeoutError | InterfaceError | RedisConnectionError | RedisTimeoutError
    )


class EventConsumer:
    """A consumer-group member that applies each entry once, in a transaction."""

    def __init__(
        self,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        group: str,
        handlers: Mapping[str, Handler],
        consumer: str | None = None,
        claim_idle_ms: int = 15_000,
        max_failures: int = 5,
        retry_delay_s: float = 1.0,
        block_ms: int = 1000,
        batch: int = 100,
        reclaim_interval_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.group = group
        self.handlers = dict(handlers)  # stream name -> handler
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures
        self.retry_delay_s = retry_delay_s
        self.block_ms = block_ms
        self.batch = batch
        # How often to ask XAUTOCLAIM for entries idle on dead consumers (per stream); 0 is
        # before every read.
        self.reclaim_interval_s = reclaim_interval_s
        self._failures_key = f"events:failures:{group}"
        self._retry_at: float | None = None
        self._reclaim_due: dict[str, float] = {}
        self._backlog_due = 0.0

    async def ensure_groups(self) -> None:
        for stream in self.handlers:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        """Consume until cancelled; a Redis or database outage only pauses it."""
        while True:
            try:
                await self.ensure_groups()
                while True:
                    await self.sample_backlog()
                    await self.process_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling()
                log.warning("consumer_loop_error", group=self.group, error=repr(exc))
                await asyncio.sleep(1.0)

    async def sample_backlog(self) -> None:
        """Set the group's lag and pending gauges per stream (at most every
        ``BACKLOG_SAMPLE_S``; one pipelined XINFO GROUPS per stream)."""
        now = asyncio.get_running_loop().time()
        if now < self._backlog_due:
            return
        self._backlog_due = now + BACKLOG_SAMPLE_S
        streams = list(self.handlers)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(stream)
            replies = await pipe.execute()
        for stream, groups in zip(streams, replies, strict=True):
            for group in groups:
                if _text(group["name"]) != self.group:
                    continue
                EVENTS_PENDING.labels(self.group, stream).set(int(group["pending"]))
                if group.get("lag") is not None:  # unknown after entries were deleted
                    EVENTS_LAG.labels(self.group, stream).set(int(group["lag"]))

    async def process_once(self, *, block_ms: int | None = None) -> int:
        """Reclaim, retry and read one batch; returns how many entries were handled."""
        handled = 0
        for stream in self.handlers:
            handled += await self._reclaim(stream)
        loop_now = asyncio.get_running_loop().time()
        if self._retry_at is not None and loop_now >= self._retry_at:
            self._retry_at = None
            handled += await self._read(dict.fromkeys(self.handlers, "0"), block_ms=None)
        handled += await self._read(
            dict.fromkeys(self.handlers, ">"),
            block_ms=self.block_ms if block_ms is None else block_ms,
        )
        return handled

    async def handle_batch(self, entries: Sequence[StreamEntry]) -> None:
        """Apply what one read returned, each entry in a transaction of its own.

        A subclass may apply a batch at once (then :meth:`ack` it) and call this for the
        entries when that fails: failure counting, retries and dead letters stay these.
        """
        for entry in entries:
            await self._handle(entry)

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        """Ack entries whose effects have committed and forget their failures, in one trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            by_stream: dict[str, list[str]] = {}
            for entry in entries:
                by_stream.setdefault(entry.stream, []).append(entry.id)
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            pipe.hdel(self._failures_key, *(f"{e.stream}:{e.id}" for e in entries))
            await pipe.execute()

    async def _reclaim(self, stream: str) -> int:
        if self.reclaim_interval_s:
            now = asyncio.get_running_loop().time()
            if now < self._reclaim_due.get(stream, 0.0):
                return 0
            self._reclaim_due[stream] = now + self.reclaim_interval_s
        result = await self.redis.xautoclaim(
            stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.batch,
        )
        entries = result[1] if result else []
        for entry_id, fields in entries:
            if fields:  # a trimmed entry comes back empty
                claimed = StreamEntry(stream, _text(entry_id), fields)
                with tracing.consumer_spans(self.group, [claimed]):
                    await self._handle(claimed)
            else:
                await self.redis.xack(stream, self.group, entry_id)
        return len(entries)

    async def _read(self, streams: dict[str, str], *, block_ms: int | None) -> int:
        response: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            streams,  # type: ignore[arg-type]
            count=self.batch,
            block=block_ms,
        )
        # RESP2 answers a list of [stream, entries]; RESP3 a mapping.
        pairs = response.items() if isinstance(response, dict) else (response or [])
        entries = [
            StreamEntry(_text(stream_name), _text(entry_id), fields)
            for stream_name, stream_entries in pairs
            for entry_id, fields in stream_entries
        ]
        if entries:
            with tracing.consumer_spans(self.group, entries):
                await self.handle_batch(entries)
        return len(entries)

    async def _handle(self, entry: StreamEntry) -> None:
        stream, entry_id, fields = entry
        handler = self.handlers[stream]
        try:
            event = Event.from_fields(fields)
        except (KeyError, ValueError) as exc:
            await self._dead_letter(stream, entry_id, fields, f"malformed event: {exc!r}")
            return
        try:
            async with self.sessionmaker() as session:
                inserted = await session.scalar(
                    insert(ProcessedEvent)
                    .values(consumer=self.group, event_id=event.id)
                    .on_conflict_do_nothing()
                    .returning(ProcessedEvent.event_id)
                )
                if inserted is None:
                    outcome = "duplicate"
                else:
                    await handler(event, session)
                    outcome = "applied"
                await commit(session)  # then its staged events and hooks
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise_if_cancelling()
            if is_outage(exc):
                # The database (or Redis) is unreachable: not the entry's fault, so it does
                # not count towards dead-lettering; it stays pending and is read again.
                log.warning("event_deferred_by_outage", group=self.group, error=repr(exc))
                self._retry_at = asyncio.get_running_loop().time() + self.retry_delay_s
                return
            await self._failed(stream, entry_id, fields, exc)
            return
        await self.ack([entry])
        EVENTS_HANDLED.labels(self.group, stream, outcome).inc()

    async def _failed(
        self, stream: str, entry_id: str, fields: Mapping[Any, Any], exc: Exception
    ) -> None:
        failures = int(await self.redis.hincrby(self._failures_key, f"{stream}:{entry_id}", 1))
        EVENTS_HANDLED.labels(self.group, stream, "failed").inc()
        log.warning(
            "event_handler_failed",
            group=self.group,
            stream=stream,
            entry_id=entry_id,
            failures=failures,
            error=repr(exc),
        )
        if failures >= self.max_failures:
            await self._dead_letter(stream, entry_id, fields, repr(exc))
            await self.redis.hdel(self._failures_key, f"{stream}:{entry_id}")
        else:
            self._retry_at = asyncio.get_running_loop().time() + self.retry_delay_s

    async def _dead_letter(
        self, stream: str, entry_id: str, fields: Mapping[Any, Any], error: str
    ) -> None:
        record = {_text(k): _text(v) for k, v in fields.items()}
        record.update(
            {
                "dead_stream": stream,
                "dead_entry_id": entry_id,
                "dead_group": self.group,
                "error": error[:2000],
                "dead_at": datetime.now(UTC).isoformat(),
            }
        )
        await self.redis.xadd(DEAD_LETTER_STREAM, record, maxlen=DEFAULT_MAXLEN, approximate=True)  # type: ignore[arg-type]
        await self.redis.xack(stream, self.group, entry_id)
        EVENTS_DEAD_LETTERED.labels(self.group, stream).inc()
        log.error(
            "event_dead_lettered",
            group=self.group,
            stream=stream,
            entry_id=entry_id,
            error=error[:200],
        )
