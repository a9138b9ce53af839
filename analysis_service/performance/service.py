"""Performance from executed trades: realised PnL, win rate and drawdown, per user and bot.

Definitions (money in ``Decimal``): ``realised_pnl`` is the sum of the fills' realised pnl
(as the trading engine reports it on reducing fills); ``fees`` the sum of all fees;
``win_rate`` the share of reducing fills with pnl > 0; ``max_drawdown`` the largest fall of
the cumulative realised pnl from its running peak (the peak starting at 0), in the quote
currency.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.performance import repository
from shared.events import Event

ZERO = Decimal(0)


class TradePayloadError(ValueError):
    """A ``trade.executed`` payload that does not follow docs/events.md (event payloads)."""


def _decimal(data: dict[str, Any], key: str, *, optional: bool = False) -> Decimal | None:
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise TradePayloadError(f"{key} is missing")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TradePayloadError(f"{key} is not a number: {value!r}") from None
    if not number.is_finite():
        raise TradePayloadError(f"{key} is not finite")
    return number


def trade_values(event: Event) -> dict[str, Any]:
    """A ``trade.executed`` payload (docs/events.md) -> a ``performance_trades`` row."""
    data = event.data
    try:
        side = str(data["side"]).lower()
        if side not in {"buy", "sell"}:
            raise TradePayloadError(f"side must be buy or sell, not {side!r}")
        executed_at = datetime.fromisoformat(str(data["executed_at"]).replace("Z", "+00:00"))
        return {
            "event_id": event.id,
            "trade_id": uuid.UUID(str(data["trade_id"])),
            "user_id": uuid.UUID(str(data["user_id"])),
            "bot_id": uuid.UUID(str(data["bot_id"])) if data.get("bot_id") else None,
            "exchange": str(data["exchange"]),
            "symbol": str(data["symbol"]),
            "side": side,
            "price": _decimal(data, "price"),
            "quantity": _decimal(data, "quantity"),
            "fee": _decimal(data, "fee", optional=True) or ZERO,
            "pnl": _decimal(data, "pnl", optional=True),
            "executed_at": executed_at,
        }
    except KeyError as exc:
        raise TradePayloadError(f"{exc.args[0]} is missing") from None


async def record_trade(event: Event, session: AsyncSession) -> None:
    """The ``trade.executed`` handler (idempotent on event id and trade id)."""
    await repository.record(session, trade_values(event))


@dataclass
class Tally:
    fills: int = 0
    closed: int = 0
    wins: int = 0
    losses: int = 0
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    peak: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    symbols: set[str] = field(default_factory=set)
    first_at: datetime | None = None
    last_at: datetime | None = None

    def add(self, symbol: str, pnl: Decimal | None, fee: Decimal, at: datetime) -> None:
        self.fills += 1
        self.fees += fee
        self.symbols.add(symbol)
        self.first_at = self.first_at or at
        self.last_at = at
        if pnl is None:
            return
        self.closed += 1
        self.wins += pnl > 0
        self.losses += pnl < 0
        self.realised += pnl
        self.peak = max(self.peak, self.realised)
        self.max_drawdown = max(self.max_drawdown, self.peak - self.realised)

    def to_json(self) -> dict[str, Any]:
        return {
            "realised_pnl": str(self.realised),
            "fees": str(self.fees),
            "n_fills": self.fills,
            "n_closed": self.closed,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.wins / self.closed if self.closed else None,
            "max_drawdown": str(self.max_drawdown),
            "symbols": sorted(self.symbols),
            "first_trade_at": self.first_at,
            "last_trade_at": self.last_at,
        }


def summarise(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    total = Tally()
    bots: dict[uuid.UUID | None, Tally] = {}
    for bot_id, symbol, pnl, fee, at in rows:
        total.add(symbol, pnl, fee, at)
        bots.setdefault(bot_id, Tally()).add(symbol, pnl, fee, at)
    return {
        "total": total.to_json(),
        "bots": [
            {"bot_id": bot_id, **tally.to_json()}
            for bot_id, tally in sorted(bots.items(), key=lambda kv: str(kv[0] or ""))
        ],
    }


async def performance(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    bot_id: uuid.UUID | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    rows = await repository.fills_for_user(session, user_id, bot_id=bot_id, since=since)
    return {"user_id": user_id, **summarise(rows)}
