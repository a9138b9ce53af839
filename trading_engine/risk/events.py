"""``risk.limit.exceeded``: staged with the work that tripped the limit (a bot's closed
or paused position), or on its own for an order that was refused and changed nothing."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.events import RISK_LIMIT_EXCEEDED, Event, stage
from trading_engine.ledger.service import SOURCE, request_notification
from trading_engine.risk.rules import RiskLimitExceeded


def stage_risk_event(
    session: AsyncSession,
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    rule: str,
    detail: str,
    action: str,
) -> None:
    """``risk.limit.exceeded`` plus its notification request, in the caller's transaction."""
    data = {
        "user_id": str(user_id),
        "bot_id": None if bot_id is None else str(bot_id),
        "rule": rule,
        "detail": detail,
        "action": action,
    }
    event = Event(type=RISK_LIMIT_EXCEEDED, data=data, source=SOURCE)
    stage(session, event)
    request_notification(
        session,
        user_id=user_id,
        kind=RISK_LIMIT_EXCEEDED,
        title=f"Risk limit {rule}: {action}",
        body=detail,
        data=data,
        source_event_id=event.id,
    )


async def report_block(
    sessionmaker: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    bot_id: uuid.UUID | None,
    breach: RiskLimitExceeded,
) -> None:
    """A refused order changed nothing, so its event goes out in a transaction of its own."""
    async with unit_of_work(sessionmaker) as session:
        stage_risk_event(session, user_id, bot_id, breach.rule, breach.detail, "blocked")
