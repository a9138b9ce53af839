"""SQL of the ``notifications`` table; every read filters on the owning user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import Notification
from notification_service.notifications.schemas import NotificationDraft


async def insert_once(session: AsyncSession, draft: NotificationDraft) -> Notification | None:
    """Insert the draft unless (user, event) is already stored; None when it was."""
    stmt = (
        insert(Notification)
        .values(_values(draft))
        .on_conflict_do_nothing(index_elements=[Notification.user_id, Notification.event_id])
        .returning(Notification)
    )
    return (await session.scalars(stmt)).one_or_none()


STORED_COLUMNS = (
    Notification.id,
    Notification.user_id,
    Notification.event_id,
    Notification.kind,
    Notification.title,
    Notification.body,
    Notification.data,
    Notification.created_at,
)


async def insert_many(session: AsyncSession, drafts: Sequence[NotificationDraft]) -> list[Row[Any]]:
    """Insert the drafts in one statement, skipping every (user, event) already stored;
    returns the rows inserted (``STORED_COLUMNS``)."""
    if not drafts:
        return []
    stmt = (
        insert(Notification)
        .values([_values(d) for d in drafts])
        .on_conflict_do_nothing(index_elements=[Notification.user_id, Notification.event_id])
        .returning(*STORED_COLUMNS)
    )
    return list((await session.execute(stmt)).all())


def _values(draft: NotificationDraft) -> dict[str, Any]:
    return {
        "user_id": draft.user_id,
        "event_id": draft.event_id,
        "kind": draft.kind,
        "title": draft.title,
        "body": draft.body,
        "data": draft.data,
    }


async def page_for_user(
    session: AsyncSession, user_id: uuid.UUID, *, unread_only: bool, limit: int, offset: int
) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
    return list((await session.scalars(stmt.limit(limit).offset(offset))).all())


async def counts_for_user(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, int]:
    """(total, unread) of the user's notifications."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(Notification.read_at.is_(None)),
            ).where(Notification.user_id == user_id)
        )
    ).one()
    return int(row[0]), int(row[1])


async def get_for_user(
    session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID
) -> Notification | None:
    return await session.scalar(
        select(Notification).where(
            Notification.id == notification_id, Notification.user_id == user_id
        )
    )


async def mark_read(session: AsyncSession, notification: Notification) -> Notification:
    """Set ``read_at`` once; a second call keeps the first time."""
    if notification.read_at is None:
        notification.read_at = datetime.now(UTC)
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
