"""Rules of stored notifications: one per (user, event), read state, pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from notification_service.models import Notification
from notification_service.notifications import repository
from notification_service.notifications.repository import BatchItem, StoredBatch
from notification_service.notifications.schemas import (
    NotificationDraft,
    NotificationPage,
    NotificationRead,
)


async def record(session: AsyncSession, draft: NotificationDraft) -> Notification | None:
    """Store the draft once per (user, event id); None if that event was already stored."""
    return await repository.insert_once(session, draft)


async def record_many(session: AsyncSession, drafts: Sequence[NotificationDraft]) -> list[Row[Any]]:
    """Store each draft once per (user, event id) in one statement; returns the new rows
    (repeats within ``drafts`` or of earlier events are skipped)."""
    unique = list({(d.user_id, d.event_id): d for d in reversed(drafts)}.values())[::-1]
    return await repository.insert_many(session, unique)


async def store_batch(
    conn: AsyncConnection, consumer: str, items: Sequence[BatchItem]
) -> StoredBatch:
    """Apply a batch of entries in one statement (see ``repository.store_batch``)."""
    return await repository.store_batch(conn, consumer, items)


def wire_form(notification: Notification) -> dict[str, Any]:
    """The JSON shape pushed over WebSocket and posted to webhooks."""
    return NotificationRead.model_validate(notification).model_dump(mode="json")


async def page(
    session: AsyncSession, user_id: uuid.UUID, *, unread_only: bool, limit: int, offset: int
) -> NotificationPage:
    """A page of the user's notifications, newest first, with total and unread counts."""
    items = await repository.page_for_user(
        session, user_id, unread_only=unread_only, limit=limit, offset=offset
    )
    total, unread = await repository.counts_for_user(session, user_id)
    return NotificationPage(
        items=[NotificationRead.model_validate(n) for n in items],
        total=unread if unread_only else total,
        unread=unread,
        limit=limit,
        offset=offset,
    )


async def mark_read(session: AsyncSession, notification: Notification) -> Notification:
    return await repository.mark_read(session, notification)


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    return await repository.mark_all_read(session, user_id)
