"""CRUD `/notifications/webhooks` and each webhook's delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from notification_service.deps import NotificationSettingsDep
from notification_service.models import Webhook
from notification_service.webhooks import repository, service
from notification_service.webhooks.schemas import (
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from shared.deps import CurrentUser, SessionDep
from shared.errors import NotFound
from shared.paging import Page, PageParams, fetch_page, paging
from shared.strict_query import StrictQueryRoute

router = APIRouter(
    route_class=StrictQueryRoute, prefix="/notifications/webhooks", tags=["webhooks"]
)


async def valid_webhook(webhook_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Webhook:
    """The caller's webhook, or 404 (another user's id is 404 too)."""
    webhook = await repository.get_for_user(session, user.user_id, webhook_id)
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} not found.")
    return webhook


OwnWebhook = Annotated[Webhook, Depends(valid_webhook)]
Paging = Annotated[PageParams, paging(50, 200)]


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(
    data: WebhookCreate, user: CurrentUser, session: SessionDep, settings: NotificationSettingsDep
) -> WebhookCreated:
    """Register a webhook; the response carries its signing secret (shown this once)."""
    webhook = await service.create(session, user.user_id, data, settings)
    return WebhookCreated.model_validate(webhook)


@router.get("", response_model=Page[WebhookRead])
async def list_webhooks(user: CurrentUser, session: SessionDep, page: Paging) -> Page[WebhookRead]:
    """The caller's webhooks, oldest first."""
    rows, total = await fetch_page(session, repository.webhooks_query(user.user_id), page)
    items = [WebhookRead.model_validate(w) for w in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/{webhook_id}", response_model=WebhookRead)
async def get_webhook(webhook: OwnWebhook) -> WebhookRead:
    """One of the caller's webhooks."""
    return WebhookRead.model_validate(webhook)


@router.patch("/{webhook_id}", response_model=WebhookRead)
@router.put("/{webhook_id}", response_model=WebhookRead)
async def update_webhook(
    data: WebhookUpdate,
    webhook: OwnWebhook,
    session: SessionDep,
    settings: NotificationSettingsDep,
) -> WebhookRead:
    """Change a webhook's URL, kinds, secret or active flag."""
    return WebhookRead.model_validate(await service.update(session, webhook, data, settings))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook: OwnWebhook, session: SessionDep) -> Response:
    """Delete a webhook and its pending deliveries."""
    await service.delete(session, webhook)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    webhook: OwnWebhook, session: SessionDep, page: Paging
) -> Page[DeliveryRead]:
    """Every delivery attempt to this webhook, newest first."""
    rows, total = await fetch_page(session, repository.deliveries_query(webhook.id), page)
    items = [DeliveryRead.model_validate(d) for d in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
