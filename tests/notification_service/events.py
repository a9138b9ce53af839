"""Events the notification service consumes, as the other services publish them."""

from __future__ import annotations

import uuid
from typing import Any

from shared.events import Event


def trade_event(user_id: uuid.UUID, **data: Any) -> Event:
    """A paper fill of 0.01 BTC/USDT at 50000 (``data`` overrides fields)."""
    payload = {
        "trade_id": str(uuid.uuid4()),
        "order_id": str(uuid.uuid4()),
        "user_id": str(user_id),
        "bot_id": None,
        "exchange": "sim",
        "symbol": "BTC/USDT",
        "side": "buy",
        "price": "50000.00000000",
        "quantity": "0.01000000",
        "fee": "0.50000000",
        "fee_currency": "USDT",
        "pnl": None,
        "mode": "paper",
        "strategy": None,
        "executed_at": "2026-11-25T05:00:00+00:00",
        **data,
    }
    return Event(type="trade.executed", data=payload, source="trading")
