"""SQL of bots, filtered on the owner (the runner reads across users)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, Text, func, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from trading_engine.models import Bot, Position, Strategy, Trade


async def get(
    session: AsyncSession, user_id: uuid.UUID, bot_id: uuid.UUID, *, lock: bool = False
) -> Bot | None:
    query = select(Bot).where(Bot.id == bot_id, Bot.user_id == user_id)
    if lock:
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    return await session.scalar(query)


async def lock_by_id(session: AsyncSession, bot_id: uuid.UUID) -> Bot | None:
    return await session.scalar(
        select(Bot)
        .where(Bot.id == bot_id)
        # NO KEY UPDATE: serialises candles with start/stop, yet lets the separate
        # transactions of a live order insert rows that reference the bot.
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


async def lock_with_positions(
    session: AsyncSession, bot_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[Bot, Position | None]]:
    """The bot rows locked (FOR NO KEY UPDATE, see :func:`lock_by_id`, in id order) with
    their open positions, in one round trip."""
    rows = await session.execute(
        select(Bot, Position)
        .outerjoin(Position, (Position.bot_id == Bot.id) & (Position.status == "open"))
        .where(Bot.id.in_(sorted(bot_ids)))
        .order_by(Bot.id)
        .with_for_update(of=Bot, key_share=True)
        .execution_options(populate_existing=True)
    )
    return {bot.id: (bot, position) for bot, position in rows}


def bots_query(user_id: uuid.UUID) -> Select[Bot]:
    """A user's bots, oldest first."""
    return select(Bot).where(Bot.user_id == user_id).order_by(Bot.created_at, Bot.id)


async def add(session: AsyncSession, bot: Bot) -> Bot:
    session.add(bot)
    await session.flush()
    await session.refresh(bot)
    return bot


async def delete(session: AsyncSession, bot: Bot) -> None:
    await session.delete(bot)
    await session.flush()


def _settings_fingerprint() -> Any:
    """What a running bot's adapter is built from (strategy, parameters, risk, size),
    hashed by PostgreSQL: the runner compares it every sync without loading the rows."""
    return func.md5(
        func.concat_ws(
            "|",
            Strategy.strategy,
            sql_cast(Strategy.parameters, Text),
            sql_cast(Bot.risk, Text),
            sql_cast(Bot.position_size, Text),
        )
    )


class RunningBot(NamedTuple):
    fingerprint: str  # of its settings (see _settings_fingerprint)
    market: str  # exchange|symbol|timeframe


async def running_bots(session: AsyncSession) -> dict[uuid.UUID, RunningBot]:
    """Every running bot's id with its settings fingerprint and market (one light query)."""
    rows = await session.execute(
        select(
            Bot.id,
            _settings_fingerprint(),
            func.concat_ws("|", Bot.exchange, Bot.symbol, Bot.timeframe),
        )
        .join(Strategy, Strategy.id == Bot.strategy_id)
        .where(Bot.status == "running")
    )
    return {row[0]: RunningBot(row[1], row[2]) for row in rows}


async def running_with_strategy(
    session: AsyncSession, bot_ids: Collection[uuid.UUID]
) -> list[tuple[Bot, Strategy, str]]:
    """The given running bots in full, with their strategies and settings fingerprints."""
    if not bot_ids:
        return []
    rows = await session.execute(
        select(Bot, Strategy, _settings_fingerprint())
        .join(Strategy, Strategy.id == Bot.strategy_id)
        .where(Bot.status == "running", Bot.id.in_(list(bot_ids)))
    )
    return [(bot, strategy, fingerprint) for bot, strategy, fingerprint in rows]


async def running_strategies_on(
    session: AsyncSession, exchange: str, symbol: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(timeframe, strategy, parameters)`` of each running bot on the market, portfolio
    bots with the pair among theirs included."""
    rows = await session.execute(
        select(Bot.timeframe, Strategy.strategy, Strategy.parameters)
        .join(Strategy, Strategy.id == Bot.strategy_id)
        .where(
            Bot.status == "running",
            Bot.exchange == exchange,
            (Bot.symbol == symbol) | Bot.pairs.contains([symbol]),
        )
    )
    return [(row[0], row[1], row[2]) for row in rows]


async def open_position(session: AsyncSession, bot: Bot) -> Position | None:
    return await session.scalar(
        select(Position).where(Position.bot_id == bot.id, Position.status == "open")
    )


async def open_positions(session: AsyncSession, bot: Bot) -> list[Position]:
    """Every open position of the bot (a portfolio bot holds one per pair at most)."""
    rows = await session.scalars(
        select(Position)
        .where(Position.bot_id == bot.id, Position.status == "open")
        .order_by(Position.opened_at, Position.id)
    )
    return list(rows)


async def realized_pnl(session: AsyncSession, bot_id: uuid.UUID) -> Decimal:
    total = await session.scalar(
        select(func.coalesce(func.sum(Trade.pnl), 0)).where(Trade.bot_id == bot_id)
    )
    return Decimal(total or 0)


async def mark_candle(
    session: AsyncSession,
    bot_id: uuid.UUID,
    candle_at: datetime,
    last_signal: dict[str, Any],
) -> bool:
    """Record a HOLD candle; False if the bot stopped or already saw the candle."""
    result = await session.execute(
        update(Bot)
        .where(
            Bot.id == bot_id,
            Bot.status == "running",
            (Bot.last_candle_at.is_(None)) | (Bot.last_candle_at < candle_at),
        )
        .values(last_candle_at=candle_at, last_signal=last_signal, error=None)
    )
    return bool(getattr(result, "rowcount", 0))


_MARK_CANDLES = text(
    """
    UPDATE bots SET last_candle_at = v.at, last_signal = v.signal, error = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[]), CAST(:signals AS jsonb[]))
         AS v(id, at, signal)
    WHERE bots.id = v.id AND bots.status = 'running'
      AND (bots.last_candle_at IS NULL OR bots.last_candle_at < v.at)
    """
)


async def mark_candles(
    session: AsyncSession, holds: dict[uuid.UUID, tuple[datetime, dict[str, Any]]]
) -> None:
    """Record HOLD candles of many bots in one statement over arrays (one execution, not
    one per bot; skips stopped bots and candles older than the row already has)."""
    await session.execute(
        _MARK_CANDLES,
        {
            "ids": list(holds),
            "ats": [at for at, _ in holds.values()],
            "signals": [orjson.dumps(signal).decode() for _, signal in holds.values()],
        },
    )


async def set_errors(session: AsyncSession, bot_ids: list[uuid.UUID], error: str) -> None:
    """Show a dependency's failure on running bots (their status stays)."""
    await session.execute(
        update(Bot).where(Bot.id.in_(bot_ids)).values(error=error[:2000], updated_at=func.now())
    )


async def set_error(
    session: AsyncSession, bot_id: uuid.UUID, error: str, status: str | None
) -> None:
    values: dict[str, Any] = {"error": error[:2000], "updated_at": func.now()}
    if status is not None:
        values["status"] = status
    await session.execute(update(Bot).where(Bot.id == bot_id).values(**values))
