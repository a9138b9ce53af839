"""`GET /notifications`, `POST /notifications/{id}/read`, `POST /notifications/read-all`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from notification_service.models import Notification
from notification_service.notifications import repository, service
from notification_service.notifications.schemas import (
    MarkedRead,
    NotificationPage,
    NotificationRead,
)
from shared.deps import CurrentUser, ReadSessionDep, SessionDep
from shared.errors import NotFound
from shared.paging import PageParams, paging
from shared.responses import model_response
from shared.strict_query import StrictQueryRoute

router = APIRouter(route_class=StrictQueryRoute, prefix="/notifications", tags=["notifications"])


async def valid_notification(
    notification_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Notification:
    """The caller's notification, or 404 (another user's id is 404 too)."""
    notification = await repository.get_for_user(session, user.user_id, notification_id)
    if notification is None:
        raise NotFound(f"Notification {notification_id} not found.")
    return notification


OwnNotification = Annotated[Notification, Depends(valid_notification)]


@router.get("", response_model=NotificationPage)
async def list_notifications(
    user: CurrentUser,
    session: ReadSessionDep,
    page: Annotated[PageParams, paging(50, 200)],
    unread: Annotated[bool, Query(description="only notifications not yet read")] = False,
) -> Response:
    """The caller's notifications, newest first."""
    body = await service.page(
        session, user.user_id, unread_only=unread, limit=page.limit, offset=page.offset
    )
    return model_response(body)


@router.post("/read-all", response_model=MarkedRead)
async def mark_all_read(user: CurrentUser, session: SessionDep) -> MarkedRead:
    """Mark every unread notification of the caller as read."""
    return MarkedRead(updated=await service.mark_all_read(session, user.user_id))


@router.get("/{notification_id}", response_model=NotificationRead)
async def get_notification(notification: OwnNotification) -> NotificationRead:
    """One of the caller's notifications."""
    return NotificationRead.model_validate(notification)


@router.post("/{notification_id}/read", response_model=NotificationRead)
async def mark_read(notification: OwnNotification, session: SessionDep) -> NotificationRead:
    """Mark one notification as read (idempotent: the first read time is kept)."""
    return NotificationRead.model_validate(await service.mark_read(session, notification))
