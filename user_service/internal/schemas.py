"""Bodies of the service-to-service API (docs/api.md, internal routes)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Permission = Literal["trade:paper", "trade:live"]


class InternalUser(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    permissions: list[str]
    trading_limits: dict[str, Any]
    preferences: dict[str, Any]


class PermissionsUpdate(BaseModel):
    """The full set of permissions the user should hold (paper trading is always kept)."""

    permissions: list[Permission] = Field(max_length=2)
