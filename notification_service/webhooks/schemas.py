"""Shapes of webhooks and their delivery attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.validation import SINGLE_LINE, Secret, Url

Kind = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, strip_whitespace=True, pattern=SINGLE_LINE),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    kinds: list[Kind] = Field(
        default_factory=list, max_length=20, description="notification kinds; empty = all"
    )
    secret: Secret | None = Field(
        default=None, description="HMAC key; generated when absent (shown once)"
    )
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    kinds: list[Kind] | None = Field(default=None, max_length=20)
    secret: Secret | None = None
    active: bool | None = None


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    kinds: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="keep it: it signs every delivery and is not shown again")


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    notification_id: uuid.UUID
    attempt: int
    status_code: int | None
    error: str | None
    succeeded: bool
    duration_ms: int | None
    attempted_at: datetime
