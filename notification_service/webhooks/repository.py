"""SQL of ``webhooks``, ``webhook_dispatches`` (retry state) and ``webhook_deliveries``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import Notification, Webhook, WebhookDelivery, WebhookDispatch


async def create(session: AsyncSession, **values: Any) -> Webhook:
    webhook = Webhook(**values)
    session.add(webhook)
    await session.flush()
    await session.refresh(webhook)
    return webhook


def webhooks_query(user_id: uuid.UUID) -> Select[Webhook]:
    """A user's webhooks, oldest first."""
    return (
        select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.created_at, Webhook.id)
    )


async def count_for_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.user_id == user_id)
    )
    return int(count or 0)


async def get_for_user(
    session: AsyncSession, user_id: uuid.UUID, webhook_id: uuid.UUID
) -> Webhook | None:
    return await session.scalar(
        select(Webhook).where(Webhook.id == webhook_id, Webhook.user_id == user_id)
    )


async def remove(session: AsyncSession, webhook: Webhook) -> None:
    await session.execute(delete(Webhook).where(Webhook.id == webhook.id))


_SCHEDULE = text(
    """
    INSERT INTO webhook_dispatches (webhook_id, notification_id)
    SELECT w.id, n.id
    FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:kinds AS text[]))
         AS n(id, user_id, kind)
    JOIN webhooks w ON w.user_id = n.user_id
    WHERE w.active AND (w.kinds = '[]'::jsonb OR w.kinds ? n.kind)
    ON CONFLICT (webhook_id, notification_id) DO NOTHING
    """
)


async def add_dispatches(
    session: AsyncSession, notifications: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> int:
    """Queue each (notification id, user id, kind) for its owner's active webhooks that take
    its kind (a webhook listing no kinds takes all); returns how many deliveries were queued."""
    if not notifications:
        return 0
    ids, users, kinds = (list(column) for column in zip(*notifications, strict=True))
    result = await session.execute(_SCHEDULE, {"ids": ids, "users": users, "kinds": kinds})
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ClaimedDispatch:
    """A pending delivery leased to this worker, with what it needs to send it."""

    id: uuid.UUID
    attempt: int  # the number this attempt will have (1-based)
    webhook_id: uuid.UUID
    url: str
    secret: str
    active: bool
    notification: Notification


async def claim_due(session: AsyncSession, *, limit: int, lease_s: float) -> list[ClaimedDispatch]:
    """Lease up to ``limit`` due deliveries: their next attempt moves ``lease_s`` ahead, so
    a worker that dies mid-attempt leaves them to be retried when the lease runs out."""
    due = (
        select(WebhookDispatch.id)
        .where(WebhookDispatch.state == "pending", WebhookDispatch.next_attempt_at <= func.now())
        .order_by(WebhookDispatch.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    leased = (
        await session.execute(
            update(WebhookDispatch)
            .where(WebhookDispatch.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_s))
            .returning(WebhookDispatch.id, WebhookDispatch.attempts)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not leased:
        return []
    attempts = {row[0]: int(row[1]) for row in leased}
    rows = (
        await session.execute(
            select(WebhookDispatch.id, Webhook, Notification)
            .join(Webhook, Webhook.id == WebhookDispatch.webhook_id)
            .join(Notification, Notification.id == WebhookDispatch.notification_id)
            .where(WebhookDispatch.id.in_(list(attempts)))
        )
    ).all()
    return [
        ClaimedDispatch(
            id=dispatch_id,
            attempt=attempts[dispatch_id] + 1,
            webhook_id=webhook.id,
            url=webhook.url,
            secret=webhook.secret,
            active=webhook.active,
            notification=notification,
        )
        for dispatch_id, webhook, notification in rows
    ]


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedDispatch,
    *,
    status_code: int | None,
    error: str | None,
    succeeded: bool,
    duration_ms: int | None,
) -> None:
    session.add(
        WebhookDelivery(
            webhook_id=claimed.webhook_id,
            notification_id=claimed.notification.id,
            attempt=claimed.attempt,
            status_code=status_code,
            error=error,
            succeeded=succeeded,
            duration_ms=duration_ms,
        )
    )
    await session.flush()


async def settle(
    session: AsyncSession,
    dispatch_id: uuid.UUID,
    *,
    attempts: int,
    state: str,
    next_attempt_at: datetime | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {"attempts": attempts, "state": state, "last_error": error}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if state == "delivered":
        values["delivered_at"] = func.now()
    await session.execute(
        update(WebhookDispatch)
        .where(WebhookDispatch.id == dispatch_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def deliveries_query(webhook_id: uuid.UUID) -> Select[WebhookDelivery]:
    """A webhook's delivery attempts, newest first."""
    return (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(
            WebhookDelivery.attempted_at.desc(),
            WebhookDelivery.attempt.desc(),
            WebhookDelivery.id,
        )
    )
