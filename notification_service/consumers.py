"""Event intake: the consumer group ``notification`` on the notification queue and on the
events users are told about (contract 2), turned into stored, pushed and forwarded
notifications.

Each entry is applied once (``EventConsumer``: ``processed_events`` in the handler's
transaction) and each notification is stored once per (user, source event id): a fill that
arrives both as ``trade.executed`` and as a ``notification.requested`` about that event is
one notification. In the same transaction the webhook deliveries are queued; after its
commit the live push goes out and the dispatcher is woken.

Channels follow the user's preferences (:mod:`notification_service.preferences`); when the
user service cannot answer, the notification is stored and sent on every channel rather than
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service import event_payloads as payloads
from notification_service.commit_hooks import after_commit
from notification_service.live.hub import LivePublisher
from notification_service.models import Notification
from notification_service.notifications import service as notifications
from notification_service.notifications.schemas import CHANNELS, NotificationDraft
from notification_service.preferences import PreferenceDirectory
from notification_service.settings import NotificationSettings
from notification_service.webhooks import service as webhooks
from shared.events import (
    BOT_FAILED,
    NOTIFICATION_QUEUE,
    RISK_LIMIT_EXCEEDED,
    TRADE_EXECUTED,
    Event,
    EventConsumer,
    Handler,
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


class NotificationIntake:
    """The handlers of the consumer group, one per stream."""

    def __init__(
        self,
        directory: PreferenceDirectory,
        publisher: LivePublisher,
        wake_dispatcher: Callable[[], None],
    ) -> None:
        self.directory = directory
        self.publisher = publisher
        self.wake_dispatcher = wake_dispatcher

    def handlers(self) -> dict[str, Handler]:
        return {
            NOTIFICATION_QUEUE: self.on_notification_requested,
            stream_for(TRADE_EXECUTED): self.on_trade_executed,
            stream_for(RISK_LIMIT_EXCEEDED): self.on_risk_limit_exceeded,
            stream_for(BOT_FAILED): self.on_bot_failed,
        }

    async def on_notification_requested(self, event: Event, session: AsyncSession) -> None:
        request = payloads.NotificationRequested.model_validate(event.data)
        await self.deliver(
            session,
            NotificationDraft(
                user_id=request.user_id,
                event_id=request.source_event_id or event.id,
                kind=request.kind,
                title=request.title,
                body=request.body,
                data=request.data,
            ),
        )

    async def on_trade_executed(self, event: Event, session: AsyncSession) -> None:
        trade = payloads.TradeExecuted.model_validate(event.data)
        title, body = describe_trade(trade)
        await self.deliver(
            session,
            NotificationDraft(trade.user_id, event.id, TRADE_EXECUTED, title, body, event.data),
        )

    async def on_risk_limit_exceeded(self, event: Event, session: AsyncSession) -> None:
        risk = payloads.RiskLimitExceeded.model_validate(event.data)
        title = f"Risk limit hit: {risk.rule}"[:200]
        body = f"{risk.detail or risk.rule} (action: {risk.action})."
        await self.deliver(
            session,
            NotificationDraft(risk.user_id, event.id, RISK_LIMIT_EXCEEDED, title, body, event.data),
        )

    async def on_bot_failed(self, event: Event, session: AsyncSession) -> None:
        failure = payloads.BotFailed.model_validate(event.data)
        title = "Bot stopped with an error"
        body = f"Bot {failure.bot_id or ''} failed: {failure.error or 'unknown error'}".replace(
            "  ", " "
        )
        await self.deliver(
            session,
            NotificationDraft(failure.user_id, event.id, BOT_FAILED, title, body, event.data),
        )

    async def deliver(self, session: AsyncSession, draft: NotificationDraft) -> Notification | None:
        """Store once; queue webhooks; push live after the commit. None if already stored."""
        prefs = await self.directory.lookup(draft.user_id)
        if prefs is None:
            # The user service does not know the user: store only if the row exists (a
            # savepoint, so a foreign-key refusal does not abort the event's transaction).
            try:
                async with session.begin_nested():
                    stored = await notifications.record(session, draft)
            except IntegrityError:
                log.warning("notification_for_unknown_user", user_id=str(draft.user_id))
                return None
            channels = CHANNELS
        else:
            stored = await notifications.record(session, draft)
            channels = prefs.channels_for(draft.kind)
        if stored is None:
            return None  # this (user, event) was stored before: no second push or webhook
        if "webhook" in channels and await webhooks.schedule(session, stored) > 0:
            after_commit(session, self.wake_dispatcher)
        if "ws" in channels:
            message = json.dumps(
                {"type": "notification", **notifications.wire_form(stored)},
                separators=(",", ":"),
            )
            user_id = stored.user_id
            after_commit(session, lambda: self.publisher.push(user_id, message))
        return stored


@contextlib.asynccontextmanager
async def run_consumers(
    app: FastAPI, intake: NotificationIntake, settings: NotificationSettings
) -> AsyncIterator[list[EventConsumer]]:
    """Start ``consumer_concurrency`` members of the group; stop them on exit."""
    consumers = [
        EventConsumer(
            app.state.redis,
            app.state.sessionmaker,
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
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
