"""Bodies of /user/me, preferences and trading limits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import Amount

NotificationKind = Literal["trade.executed", "risk.limit.exceeded", "bot.failed", "info"]
Channel = Literal["ws", "webhook"]
Theme = Literal["light", "dark", "system"]


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
    """User preferences: the UI theme and, per notification kind, its channels (a kind left
    out gets every channel). A closed schema, so the stored object stays small; trading
    limits have their own route (``/user/me/limits``)."""

    model_config = ConfigDict(extra="forbid")

    theme: Theme | None = None
    notifications: dict[NotificationKind, Annotated[list[Channel], Field(max_length=2)]] = Field(
        default_factory=dict
    )

    def stored(self) -> dict[str, Any]:
        """JSON for the database, an unset theme left out."""
        return self.model_dump(mode="json", exclude_none=True)


class TradingLimits(BaseModel):
    """Per-user risk limits; every one optional (absent: no limit of that kind)."""

    model_config = ConfigDict(extra="forbid")

    max_order_value: Amount | None = None
    max_position_value: Amount | None = None
    max_open_positions: int | None = Field(default=None, ge=1, le=10_000)
    daily_loss_limit: Amount | None = None

    def stored(self) -> dict[str, Any]:
        """JSON for the database: Decimals as strings, unset limits left out."""
        return self.model_dump(mode="json", exclude_none=True)
