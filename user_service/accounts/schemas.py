"""Bodies of /user/me, preferences and trading limits."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NotificationKind = Literal["trade.executed", "risk.limit.exceeded", "bot.failed", "info"]
Channel = Literal["ws", "webhook"]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    permissions: list[str]
    preferences: dict[str, Any]
    trading_limits: dict[str, Any]
    created_at: datetime | None
    last_login_at: datetime | None


class Preferences(BaseModel):
    """User preferences; `notifications` maps a kind to its channels (absent: all)."""

    model_config = ConfigDict(extra="allow")

    notifications: dict[NotificationKind, list[Channel]] = Field(default_factory=dict)


class TradingLimits(BaseModel):
    """Per-user risk limits; every one optional (absent: no limit of that kind)."""

    model_config = ConfigDict(extra="forbid")

    max_order_value: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)
    max_position_value: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)
    max_open_positions: int | None = Field(default=None, ge=1, le=10_000)
    daily_loss_limit: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)

    def stored(self) -> dict[str, Any]:
        """JSON for the database: Decimals as strings, unset limits left out."""
        return self.model_dump(mode="json", exclude_none=True)
