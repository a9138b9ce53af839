"""SQL of the ``notifications`` table; every read filters on the owning user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Row, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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
) -> Sequence[Row[Any]]:
    """Plain rows, not ORM objects: a page is read and serialised, never changed."""
    stmt = select(*Notification.__table__.columns).where(Notification.user_id == user_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
    return (await session.execute(stmt.limit(limit).offset(offset))).all()


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


_STORE_BATCH = text(
    """
    WITH input AS (
        SELECT * FROM unnest(
            CAST(:entry_ids AS uuid[]), CAST(:user_ids AS uuid[]), CAST(:event_ids AS uuid[]),
            CAST(:kinds AS text[]), CAST(:titles AS text[]), CAST(:bodies AS text[]),
            CAST(:datas AS text[]), CAST(:hooks AS boolean[]), CAST(:ords AS integer[])
        ) AS i(entry_id, user_id, event_id, kind, title, body, data, hook, ord)
    ),
    processed AS (
        INSERT INTO processed_events (consumer, event_id)
        SELECT DISTINCT CAST(:consumer AS text), entry_id FROM input
        ON CONFLICT DO NOTHING
        RETURNING event_id
    ),
    fresh AS (
        SELECT DISTINCT ON (i.user_id, i.event_id) i.*
        FROM input i JOIN processed p ON p.event_id = i.entry_id
        ORDER BY i.user_id, i.event_id, i.ord
    ),
    stored AS (
        INSERT INTO notifications (user_id, event_id, kind, title, body, data)
        SELECT user_id, event_id, kind, title, body, CAST(data AS jsonb) FROM fresh
        ON CONFLICT (user_id, event_id) DO NOTHING
        RETURNING id, user_id, event_id, kind, title, body, data, read_at, created_at
    ),
    queued AS (
        INSERT INTO webhook_dispatches (webhook_id, notification_id)
        SELECT w.id, s.id
        FROM stored s
        JOIN fresh f ON f.user_id = s.user_id AND f.event_id = s.event_id AND f.hook
        JOIN webhooks w ON w.user_id = s.user_id
        WHERE w.active AND (w.kinds = '[]'::jsonb OR w.kinds ? s.kind)
        ON CONFLICT (webhook_id, notification_id) DO NOTHING
        RETURNING 1
    )
    SELECT
        (SELECT coalesce(array_agg(event_id), '{}') FROM processed) AS fresh_ids,
        (SELECT count(*) FROM queued) AS queued,
        (SELECT coalesce(json_agg(s ORDER BY f.ord), '[]')
           FROM stored s JOIN fresh f ON f.user_id = s.user_id AND f.event_id = s.event_id
        ) AS stored
    """
)


@dataclass(frozen=True)
class BatchItem:
    """One stream entry of a batch: its event id, the notification it makes, and whether
    that notification goes to the user's webhooks."""

    entry_event_id: uuid.UUID
    draft: NotificationDraft
    to_webhooks: bool


@dataclass(frozen=True)
class StoredBatch:
    fresh_event_ids: set[uuid.UUID]  # entries not processed by this consumer group before
    stored: list[dict[str, Any]]  # notifications newly stored, JSON-ready, in entry order
    queued_deliveries: int


async def store_batch(
    conn: AsyncConnection, consumer: str, items: Sequence[BatchItem]
) -> StoredBatch:
    """In ONE statement (run it in autocommit: it is atomic on its own): record the entries
    in ``processed_events`` for ``consumer``, store a notification for each entry seen for
    the first time (once per (user, event)), and queue webhook deliveries for them."""
    row = (
        await conn.execute(
            _STORE_BATCH,
            {
                "consumer": consumer,
                "entry_ids": [i.entry_event_id for i in items],
                "user_ids": [i.draft.user_id for i in items],
                "event_ids": [i.draft.event_id for i in items],
                "kinds": [i.draft.kind for i in items],
                "titles": [i.draft.title for i in items],
                "bodies": [i.draft.body for i in items],
                "datas": [orjson.dumps(i.draft.data, default=str).decode() for i in items],
                "hooks": [i.to_webhooks for i in items],
                "ords": list(range(len(items))),
            },
        )
    ).one()
    stored = row.stored if isinstance(row.stored, list) else orjson.loads(row.stored)
    return StoredBatch(
        fresh_event_ids={uuid.UUID(str(e)) for e in row.fresh_ids},
        stored=stored,
        queued_deliveries=int(row.queued),
    )
