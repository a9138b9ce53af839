"""A bot's trouble: a dependency's failure is shown on the bots, which keep running and
retry; an unexpected error (three in a row) marks the bot ``error`` and tells its user."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import unit_of_work
from shared.errors import DependencyUnavailable
from shared.events import BOT_FAILED, Event, stage
from trading_engine.bots import repository
from trading_engine.bots.lease import BotLeases
from trading_engine.bots.metrics import CANDLES_SKIPPED
from trading_engine.ledger.service import SOURCE, request_notification

log = structlog.get_logger("trading.runner")

# Failures of a dependency, not of the bot: retried, never counted against it.
TEMPORARY = (
    DependencyUnavailable,
    TimeoutError,
    OSError,
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
)
FAILURES_BEFORE_ERROR = 3


def failure_detail(exc: BaseException) -> str:
    return exc.detail if isinstance(exc, DependencyUnavailable) else repr(exc)


class BotFailures:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], leases: BotLeases) -> None:
        self.sessionmaker = sessionmaker
        self.leases = leases

    async def note_errors(self, bot_ids: list[uuid.UUID], detail: str) -> None:
        """A dependency failed: the bots keep running, with the error shown."""
        log.warning("bot_dependency_unavailable", bots=len(bot_ids), error=detail)
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_errors(session, bot_ids, detail)

    async def note_skipped(self, bot_id: uuid.UUID, count: int, resumed_at_ms: int) -> None:
        """Missed candles past ``BOT_REPLAY_LIMIT`` were not replayed: shown on the bot (its
        ``error``, until its next candle) and logged."""
        resumed = datetime.fromtimestamp(resumed_at_ms / 1000, UTC).isoformat()
        detail = (
            f"{count} missed candles before {resumed} were not replayed "
            "(more than BOT_REPLAY_LIMIT, or the market no longer has them)."
        )
        log.warning("bot_candles_skipped", bot_id=str(bot_id), count=count, before=resumed)
        CANDLES_SKIPPED.inc(count)
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_errors(session, [bot_id], detail)

    async def fail(self, user_id: uuid.UUID, bot_id: uuid.UUID, error: str) -> None:
        """Mark the bot ``error`` and tell the user (``bot.failed`` + a notification)."""
        with contextlib.suppress(Exception):
            async with unit_of_work(self.sessionmaker) as session:
                await repository.set_error(session, bot_id, error, "error")
                data = {"user_id": str(user_id), "bot_id": str(bot_id), "error": error}
                event = Event(type=BOT_FAILED, data=data, source=SOURCE)
                stage(session, event)
                request_notification(
                    session,
                    user_id=user_id,
                    kind=BOT_FAILED,
                    title="A bot stopped on an error",
                    body=error[:500],
                    data=data,
                    source_event_id=event.id,
                )
        await self.leases.release(bot_id)
