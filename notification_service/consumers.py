"""Event intake: the consumer group ``notification`` on the notification queue and on the
events users are told about (docs/events.md), turned into stored, pushed and forwarded
notifications.

Each entry is applied once (its event id in ``processed_events``) and each notification is
stored once per (user, source event id): a fill that arrives both as ``trade.executed`` and
as a ``notification.requested`` about that event is one notification.

Fast path (:class:`BatchingConsumer`): what one XREADGROUP returns is applied by a single
autocommit statement that records the ids, stores the notifications and queues their webhook
deliveries; then the entries are acked, pushed live and the dispatcher is woken. Anything
unusual in a batch sends each of its entries through the shared ``EventConsumer`` path (one
transaction per entry, the push and wake-up after its commit), whose retries, reclaim and
dead-lettering are unchanged.

Channels follow the user's preferences (:mod:`notification_service.preferences`); when the
user service cannot answer, the notification is stored and sent on every channel rather than
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson
import structlog
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)

from notification_service import event_payloads as payloads
from notification_service.live.hub import LivePublisher
from notification_service.notifications import service as notifications
from notification_service.notifications.repository import BatchItem
from notification_service.notifications.schemas import CHANNELS, NotificationDraft
from notification_service.preferences import (
    MISSING,
    ChannelPreferences,
    PreferenceDirectory,
    UnknownUser,
)
from notification_service.settings import NotificationSettings
from notification_service.webhooks import service as webhooks
from shared.cancellation import cancel_and_wait
from shared.db import after_commit, create_sessionmaker
from shared.events import (
    BOT_FAILED,
    EVENTS_HANDLED,
    NOTIFICATION_QUEUE,
    RISK_LIMIT_EXCEEDED,
    TRADE_EXECUTED,
    Event,
    EventConsumer,
    Handler,
    StreamEntry,
    stream_for,
)

log = structlog.get_logger("intake")


def _amount(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def describe_trade(trade: payloads.TradeExecuted) -> tuple[str, str]:
    verb = "Bought" if trade.side.lower() == "buy" else "Sold"
    title = f"{verb} {_amount(trade.quantity)} {trade.symbol} at {_amount(trade.price)}"
    body = (
        f"{trade.mode.capitalize()} {trade.side.lower()} of {_amount(trade.quantity)} "
        f"{trade.symbol} on {trade.exchange or 'the exchange'} at {_amount(trade.price)}"
    )
    if trade.fee is not None:
        body += f", fee {_amount(trade.fee)} {trade.fee_currency or ''}".rstrip()
    if trade.pnl is not None:
        body += f", realised PnL {_amount(trade.pnl)}"
    if trade.strategy:
        body += f" (strategy {trade.strategy})"
    return title[:200], body + "."


def _wire(row: Row[Any]) -> bytes:
    """The pushed frame: the notification as `GET /notifications` shows it, typed."""
    return orjson.dumps(
        {
            "type": "notification",
            "id": str(row.id),  # asyncpg's UUID type is not the stdlib one orjson knows
            "user_id": str(row.user_id),
            "event_id": str(row.event_id),
            "kind": row.kind,
            "title": row.title,
            "body": row.body,
            "data": row.data,
            "read_at": None,
            "created_at": row.created_at,
        }
    )


class NotificationIntake:
    """Turns events into notifications; ``apply`` stores a batch in the caller's transaction."""

    def __init__(
        self,
        directory: PreferenceDirectory,
        publisher: LivePublisher,
        wake_dispatcher: Callable[[], None],
    ) -> None:
        self.directory = directory
        self.publisher = publisher
        self.wake_dispatcher = wake_dispatcher
        self._drafters: dict[str, Callable[[Event], NotificationDraft]] = {
            NOTIFICATION_QUEUE: draft_requested,
            stream_for(TRADE_EXECUTED): draft_trade,
            stream_for(RISK_LIMIT_EXCEEDED): draft_risk,
            stream_for(BOT_FAILED): draft_bot_failure,
        }

    @property
    def streams(self) -> list[str]:
        return list(self._drafters)

    def handlers(self) -> dict[str, Handler]:
        """Per-entry handlers for :class:`EventConsumer` (and the batch fallback)."""

        def handler_for(stream: str) -> Handler:
            async def handle(event: Event, session: AsyncSession) -> None:
                await self.apply(session, [(stream, event)])

            return handle

        return {stream: handler_for(stream) for stream in self._drafters}

    async def apply(
        self, session: AsyncSession, items: Sequence[tuple[str, Event]]
    ) -> list[Row[Any]]:
        """Store one notification per (user, event) of the items; queue their webhooks; push
        them live after the commit. Returns the rows newly stored (repeats are skipped)."""
        drafts = [self._drafters[stream](event) for stream, event in items]
        owners = list(dict.fromkeys(d.user_id for d in drafts))
        found = await asyncio.gather(*(self.directory.lookup(u) for u in owners))
        prefs = dict(zip(owners, found, strict=True))
        known = [d for d in drafts if prefs[d.user_id] is not None]
        stored = await notifications.record_many(session, known)
        for draft in drafts:
            if prefs[draft.user_id] is None:
                stored.extend(await self._store_for_unknown_user(session, draft))

        by_webhook: list[tuple[uuid.UUID, uuid.UUID, str]] = []
        pushes: list[tuple[uuid.UUID, bytes]] = []
        for row in stored:
            user_prefs = prefs[row.user_id]
            channels = CHANNELS if user_prefs is None else user_prefs.channels_for(row.kind)
            if "webhook" in channels:
                by_webhook.append((row.id, row.user_id, row.kind))
            if "ws" in channels:
                pushes.append((row.user_id, _wire(row)))
        if by_webhook and await webhooks.schedule(session, by_webhook) > 0:
            after_commit(session, self.wake_dispatcher)
        if pushes:
            after_commit(session, lambda: self.publisher.push_many(pushes))
        return stored

    async def apply_batch(
        self, conn: AsyncConnection, consumer: str, items: Sequence[tuple[str, Event]]
    ) -> set[uuid.UUID]:
        """The fast path for a batch: one autocommit statement (``store_batch``), then the
        live push and the dispatcher wake-up. Returns the event ids applied for the first
        time. Raises on anything unusual (a bad payload, a user the user service does not
        know) so the caller falls back to the per-entry path."""
        drafts = [(event.id, self._drafters[stream](event)) for stream, event in items]
        prefs: dict[uuid.UUID, ChannelPreferences] = {}
        missing: list[uuid.UUID] = []
        for _, draft in drafts:
            if draft.user_id not in prefs:
                hit = self.directory.cached(draft.user_id)
                if hit is MISSING:
                    missing.append(draft.user_id)
                elif hit is None:
                    raise UnknownUser(str(draft.user_id))
                else:
                    prefs[draft.user_id] = hit
        missing = list(dict.fromkeys(missing))
        found = await asyncio.gather(*(self.directory.lookup(u) for u in missing))
        for owner, owner_prefs in zip(missing, found, strict=True):
            if owner_prefs is None:
                raise UnknownUser(str(owner))
            prefs[owner] = owner_prefs
        result = await notifications.store_batch(
            conn,
            consumer,
            [
                BatchItem(
                    event_id, draft, "webhook" in prefs[draft.user_id].channels_for(draft.kind)
                )
                for event_id, draft in drafts
            ],
        )
        pushes = [
            (row["user_id"], orjson.dumps({"type": "notification", **row}))
            for row in result.stored
            if "ws" in prefs[uuid.UUID(row["user_id"])].channels_for(row["kind"])
        ]
        if pushes:
            self.publisher.push_many(pushes)
        if result.queued_deliveries:
            self.wake_dispatcher()
        return result.fresh_event_ids

    async def _store_for_unknown_user(
        self, session: AsyncSession, draft: NotificationDraft
    ) -> list[Row[Any]]:
        # The user service does not know the user: store only if the row exists (in a
        # savepoint, so a foreign-key refusal does not abort the event's transaction).
        try:
            async with session.begin_nested():
                return await notifications.record_many(session, [draft])
        except IntegrityError:
            log.warning("notification_for_unknown_user", user_id=str(draft.user_id))
            return []


def draft_requested(event: Event) -> NotificationDraft:
    request = payloads.NotificationRequested.model_validate(event.data)
    title, body = request.title, request.body
    if request.kind == TRADE_EXECUTED:
        # A fill is announced both ways (its trade.executed event and this request);
        # whichever arrives first is stored, so both must read the same.
        with contextlib.suppress(ValidationError):
            title, body = describe_trade(payloads.TradeExecuted.model_validate(request.data))
    return NotificationDraft(
        user_id=request.user_id,
        event_id=request.source_event_id or event.id,
        kind=request.kind,
        title=title,
        body=body,
        data=request.data,
    )


def draft_trade(event: Event) -> NotificationDraft:
    trade = payloads.TradeExecuted.model_validate(event.data)
    title, body = describe_trade(trade)
    return NotificationDraft(trade.user_id, event.id, TRADE_EXECUTED, title, body, event.data)


def draft_risk(event: Event) -> NotificationDraft:
    risk = payloads.RiskLimitExceeded.model_validate(event.data)
    title = f"Risk limit hit: {risk.rule}"[:200]
    body = f"{risk.detail or risk.rule} (action: {risk.action})."
    return NotificationDraft(risk.user_id, event.id, RISK_LIMIT_EXCEEDED, title, body, event.data)


def draft_bot_failure(event: Event) -> NotificationDraft:
    failure = payloads.BotFailed.model_validate(event.data)
    bot = f"Bot {failure.bot_id}" if failure.bot_id else "A bot"
    body = f"{bot} failed: {failure.error or 'unknown error'}"
    return NotificationDraft(
        failure.user_id, event.id, BOT_FAILED, "Bot stopped with an error", body, event.data
    )


class BatchingConsumer(EventConsumer):
    """:class:`EventConsumer` that applies what one XREADGROUP returned in one transaction.

    Same guarantees, fewer round trips: the batch's ids go into ``processed_events`` in one
    statement (ids already there are skipped as duplicates), the notifications in another,
    and the entries are acked together after the commit. If anything in the batch fails,
    the transaction rolls back and every entry goes through the inherited per-entry path,
    so failure counting, retries and dead-lettering are exactly the shared consumer's.
    """

    def __init__(
        self, *args: Any, intake: NotificationIntake, engine: AsyncEngine, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.intake = intake
        self.engine = engine
        # XAUTOCLAIM only finds entries idle for claim_idle_ms; asking on every loop (one
        # round trip per stream before each read) buys nothing, so ask every half of that.
        self.reclaim_interval_s = self.claim_idle_ms / 2000

    async def handle_batch(self, entries: Sequence[StreamEntry]) -> None:
        try:
            await self._apply_batch(entries)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("batch_fell_back_to_single_entries", error=repr(exc), size=len(entries))
        await super().handle_batch(entries)

    async def _apply_batch(self, entries: Sequence[StreamEntry]) -> None:
        parsed = [(entry, Event.from_fields(entry.fields)) for entry in entries]
        async with self.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            fresh_ids = await self.intake.apply_batch(
                autocommit, self.group, [(entry.stream, event) for entry, event in parsed]
            )
        fresh: list[tuple[str, Event]] = []
        for entry, event in parsed:
            if event.id in fresh_ids:
                fresh_ids.discard(event.id)  # a repeat within the batch is a duplicate too
                fresh.append((entry.stream, event))
        await self.ack(entries)
        applied = Counter(stream for stream, _event in fresh)
        seen = Counter(entry.stream for entry in entries)
        for stream, n in seen.items():
            if applied[stream]:
                EVENTS_HANDLED.labels(self.group, stream, "applied").inc(applied[stream])
            if n > applied[stream]:
                EVENTS_HANDLED.labels(self.group, stream, "duplicate").inc(n - applied[stream])


@contextlib.asynccontextmanager
async def run_consumers(
    app: FastAPI, intake: NotificationIntake, settings: NotificationSettings
) -> AsyncIterator[list[EventConsumer]]:
    """Start ``consumer_concurrency`` members of the group; stop them on exit.

    They get a pool of their own: apart from isolating them from HTTP traffic, it skips the
    pre-ping (three round trips per checkout) on this hot path; a connection found dead
    fails its batch, which the consumer retries like any failure.
    """
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.consumer_concurrency,
        max_overflow=settings.consumer_concurrency,
        pool_pre_ping=False,
        pool_recycle=600,
        pool_timeout=5,
        connect_args={"timeout": 3, "command_timeout": 30},
    )
    sessionmaker = create_sessionmaker(engine, app.state.redis)
    consumers: list[EventConsumer] = [
        BatchingConsumer(
            app.state.redis,
            sessionmaker,
            intake=intake,
            engine=engine,
            group=settings.consumer_group,
            handlers=intake.handlers(),
            consumer=f"{settings.service_name}-{uuid.uuid4().hex[:10]}-{n}",
            claim_idle_ms=settings.event_claim_idle_ms,
            max_failures=settings.event_max_failures,
            retry_delay_s=settings.event_retry_delay_s,
        )
        for n in range(settings.consumer_concurrency)
    ]
    tasks = [asyncio.create_task(c.run(), name=f"consumer-{c.consumer}") for c in consumers]
    try:
        yield consumers
    finally:
        await cancel_and_wait(tasks)
        await engine.dispose()
