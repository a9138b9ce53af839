"""Pausing a bot for a limit, and resuming it (docs/trading.md, risk limits).

The daily loss limit pauses a bot until the next UTC day (or until its owner starts it
again); the engine's bot sync resumes those whose day has passed. A bot that lost the
live permission stays paused until its owner starts it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Bot

PAUSING_RULES = frozenset({"daily_loss_limit", "permission"})


def next_utc_day(now: datetime | None = None) -> datetime:
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def pause(bot: Bot, *, until_next_day: bool) -> None:
    """Pause ``bot`` (its row locked by the caller)."""
    bot.status = "paused"
    bot.paused_until = next_utc_day() if until_next_day else None


async def resume_due(session: AsyncSession, now: datetime | None = None) -> int:
    """Set running again the bots paused until a time that has passed; how many."""
    result = await session.execute(
        update(Bot)
        .where(Bot.status == "paused", Bot.paused_until <= (now or datetime.now(UTC)))
        .values(status="running", paused_until=None, updated_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0)
