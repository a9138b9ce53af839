"""Rules of webhooks: owner-only CRUD, URLs through the SSRF guard, delivery scheduling."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import Webhook
from notification_service.settings import NotificationSettings
from notification_service.webhooks import repository, signing
from notification_service.webhooks.schemas import WebhookCreate, WebhookUpdate
from notification_service.webhooks.url_guard import AddressPolicy, UnsafeWebhookUrl, resolve
from shared.errors import Conflict
from shared.validation import invalid_input


def address_policy(settings: NotificationSettings) -> AddressPolicy:
    return AddressPolicy(
        allow_private=settings.webhook_allow_private,
        allowed_networks=tuple(settings.allowed_networks),
    )


async def check_url(url: str, settings: NotificationSettings) -> None:
    """422 unless the URL is http(s) and resolves only to addresses the policy permits."""
    try:
        await resolve(url, address_policy(settings))
    except UnsafeWebhookUrl as exc:
        raise invalid_input(["body", "url"], str(exc)) from exc


async def create(
    session: AsyncSession, user_id: uuid.UUID, data: WebhookCreate, settings: NotificationSettings
) -> Webhook:
    """A new webhook for the user; its secret is generated unless given."""
    if await repository.count_for_user(session, user_id) >= settings.webhook_max_per_user:
        raise Conflict(f"At most {settings.webhook_max_per_user} webhooks per user.")
    await check_url(data.url, settings)
    return await repository.create(
        session,
        user_id=user_id,
        url=data.url,
        kinds=list(dict.fromkeys(data.kinds)),
        secret=data.secret or signing.new_secret(),
        active=data.active,
    )


async def update(
    session: AsyncSession, webhook: Webhook, data: WebhookUpdate, settings: NotificationSettings
) -> Webhook:
    if data.url is not None and data.url != webhook.url:
        await check_url(data.url, settings)
        webhook.url = data.url
    if data.kinds is not None:
        webhook.kinds = list(dict.fromkeys(data.kinds))
    if data.secret is not None:
        webhook.secret = data.secret
    if data.active is not None:
        webhook.active = data.active
    await session.flush()
    return webhook


async def delete(session: AsyncSession, webhook: Webhook) -> None:
    await repository.remove(session, webhook)


async def schedule(
    session: AsyncSession, notifications: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
) -> int:
    """Queue (notification id, user id, kind) for each of the owner's active webhooks that take
    that kind; the rows commit with the notifications, so a crash cannot lose a delivery."""
    return await repository.add_dispatches(session, notifications)
