"""Shapes of stored notifications."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.paging import Page

# The kinds users' preferences are keyed by (docs/api.md, user service); others are accepted.
KINDS = ("trade.executed", "risk.limit.exceeded", "bot.failed", "info")
CHANNELS = frozenset({"ws", "webhook"})


@dataclass(frozen=True)
class NotificationDraft:
    """A notification about to be stored: ``event_id`` is the event it reports on."""

    user_id: uuid.UUID
    event_id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    read_at: datetime | None
    created_at: datetime


class NotificationPage(Page[NotificationRead]):
    """The paging envelope plus how many of the caller's notifications are unread."""

    unread: int


class MarkedRead(BaseModel):
    updated: int
