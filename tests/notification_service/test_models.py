"""The ORM models of the notification service match its section of the migration."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import Notification, Webhook, WebhookDelivery, WebhookDispatch


@pytest.mark.parametrize("model", [Notification, Webhook, WebhookDispatch, WebhookDelivery])
async def test_the_model_has_the_migrated_columns(model: type, session: AsyncSession) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    rows = await session.execute(
        text(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = :t"
        ),
        {"t": table.name},
    )
    migrated = {name: nullable == "YES" for name, nullable in rows}
    modelled = {c.name: c.nullable for c in table.columns}
    assert set(modelled) == set(migrated)
    for name, nullable in modelled.items():
        if not table.columns[name].primary_key:
            assert nullable == migrated[name], name
