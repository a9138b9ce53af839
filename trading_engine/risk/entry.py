"""The entry guard: what an order that opens or adds to a position would do to the limits
(the position after it, open positions, today's realised PnL), checked against the
user's trading limits and the bot's own settings before the order is booked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.ledger import repository as ledger_repository
from trading_engine.money import ZERO, money
from trading_engine.risk.rules import EntryContext, RiskSettings, check_entry
from trading_engine.user_client import TradingLimits


@dataclass(frozen=True, slots=True)
class ProposedEntry:
    """An order about to be booked, as the entry limits see it."""

    user_id: uuid.UUID
    bot_id: uuid.UUID | None
    exchange: str
    symbol: str
    mode: str
    side: str
    quantity: Decimal
    price: Decimal


def start_of_day() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def entry_context(
    session: AsyncSession,
    entry: ProposedEntry,
    limits: TradingLimits,
    risk: RiskSettings | None = None,
    *,
    lock: bool = True,
) -> EntryContext:
    """What the entry limits look at; only the figures a configured limit needs are
    queried (an order without limits costs the position lookup alone)."""
    own = risk or RiskSettings()
    position = await ledger_repository.lock_open_position(
        session,
        entry.user_id,
        entry.bot_id,
        entry.exchange,
        entry.symbol,
        entry.mode,
        lock=lock,
    )
    held = position.quantity if position is not None else ZERO
    since = start_of_day()
    wants_count = limits.max_open_positions is not None or own.max_open_positions is not None
    wants_realized = limits.daily_loss_limit is not None
    wants_bot_realized = entry.bot_id is not None and own.daily_loss_limit is not None
    if wants_count or wants_realized or wants_bot_realized:
        # The user's other bots may have fills pending in this transaction.
        await session.flush()
    return EntryContext(
        side=entry.side,
        order_value=money(entry.quantity * entry.price),
        position_value_after=money((held + entry.quantity) * entry.price),
        opens_new_position=position is None,
        open_positions=(
            await ledger_repository.count_open_positions(session, entry.user_id)
            if wants_count
            else 0
        ),
        realized_today=(
            await ledger_repository.realized_since(session, entry.user_id, since)
            if wants_realized
            else ZERO
        ),
        bot_realized_today=(
            await ledger_repository.realized_since(session, entry.user_id, since, entry.bot_id)
            if wants_bot_realized
            else None
        ),
    )


async def guard_entry(
    session: AsyncSession,
    entry: ProposedEntry,
    limits: TradingLimits,
    risk: RiskSettings | None = None,
    *,
    lock: bool = True,
) -> None:
    """Raise :class:`~trading_engine.risk.rules.RiskLimitExceeded` for the first limit
    the order would break, inside the caller's transaction; the caller reports it (a
    manual order: :func:`~trading_engine.risk.events.report_block`; a bot: its candle's
    ``risk.limit.exceeded`` and a pause)."""
    context = await entry_context(session, entry, limits, risk, lock=lock)
    check_entry(context, limits, risk)
