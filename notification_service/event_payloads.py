"""The ``data`` of the events the notification service consumes (docs/events.md), validated.

A payload that does not fit raises, so the entry is retried and then dead-lettered with the
validation error rather than silently dropped.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_id: uuid.UUID


class TradeExecuted(_Payload):
    trade_id: str | None = None
    order_id: str | None = None
    bot_id: str | None = None
    exchange: str = ""
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal | None = None
    fee_currency: str | None = None
    pnl: Decimal | None = None
    mode: str = "paper"
    strategy: str | None = None
    executed_at: str | None = None


class RiskLimitExceeded(_Payload):
    bot_id: str | None = None
    rule: str
    detail: str = ""
    action: str = "blocked"


class BotFailed(_Payload):
    bot_id: str | None = None
    error: str = ""


class NotificationRequested(_Payload):
    kind: str = Field(default="info", min_length=1, max_length=50)
    title: str = Field(min_length=1, max_length=200)
    body: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    source_event_id: uuid.UUID | None = None
