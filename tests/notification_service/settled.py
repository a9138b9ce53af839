"""Waiting until the notification service has nothing left in flight, so a test can assert
that something did not happen: entries handled, pushes delivered, webhook calls settled."""

from __future__ import annotations

import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import WebhookDispatch
from shared.events import NOTIFICATION_QUEUE, NOTIFICATION_REQUESTED, Event, publish
from tests.notification_service.live_client import LiveClient
from tests.waiting import eventually

GROUP = "notification"
MARKER_KIND = "test.marker"


async def entries_handled(redis: Redis, *streams: str) -> None:
    """Wait until the consumer group has read and acked every entry of ``streams``; the
    notifications they made are then committed and their pushes queued (both come first)."""

    async def done() -> bool:
        for stream in streams:
            groups = {g["name"]: g for g in await redis.xinfo_groups(stream)}
            if GROUP not in groups or groups[GROUP]["lag"] not in (0, None):
                return False
            if (await redis.xpending(stream, GROUP))["pending"]:
                return False
        return True

    await eventually(done)


async def pushed_so_far(
    client: LiveClient, redis: Redis, user_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The notifications pushed to ``client`` once nothing pushed earlier can still be on
    its way: a marker notification requested now reaches the socket after everything the
    service queued before it (one publisher queue, one pub/sub channel per user). Call it
    after :func:`entries_handled`. The marker is left out of the answer; a test whose user
    has webhooks keeps it off them with ``{"notifications": {MARKER_KIND: ["ws"]}}``."""
    marker = await request_marker(redis, user_id)

    async def arrived() -> bool:
        return any(n["event_id"] == str(marker.id) for n in client.notifications)

    await eventually(arrived)
    return [n for n in client.notifications if n["kind"] != MARKER_KIND]


async def request_marker(redis: Redis, user_id: uuid.UUID) -> Event:
    """Ask the service for a notification of kind :data:`MARKER_KIND` to ``user_id``."""
    marker = Event(
        type=NOTIFICATION_REQUESTED,
        data={"user_id": str(user_id), "kind": MARKER_KIND, "title": "marker"},
        source="test",
    )
    await publish(redis, marker, stream=NOTIFICATION_QUEUE)
    return marker


async def webhooks_settled(session: AsyncSession) -> None:
    """Wait until no webhook delivery is pending: every call there will be has been made."""

    async def settled() -> bool:
        await session.commit()  # a fresh snapshot on every poll
        pending = await session.scalar(
            select(func.count())
            .select_from(WebhookDispatch)
            .where(WebhookDispatch.state == "pending")
        )
        return pending == 0

    await eventually(settled)
