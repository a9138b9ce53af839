"""After-commit hooks: run once the transaction has committed, never after a rollback."""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import shared.db
from shared.db import COMMITTED_AT, after_commit, commit, unit_of_work
from shared.events import Event, OutboxEntry, stage, stream_for

STREAM = stream_for("pair.listed")


async def add_pair(session: AsyncSession, symbol: str) -> None:
    await session.execute(
        text("INSERT INTO trading_pairs (symbol, base, exchange) VALUES (:s, 'X', 'test')"),
        {"s": symbol},
    )


async def pairs(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as other:  # another connection: sees committed rows only
        return list(await other.scalars(text("SELECT symbol FROM trading_pairs")))


def listed(symbol: str) -> Event:
    return Event(type="pair.listed", data={"symbol": symbol}, source="test")


class RouteFailed(Exception):
    pass


async def failed_unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[None]],
) -> None:
    """A unit of work whose route raises after ``work`` (so it rolls back)."""
    async with unit_of_work(sessionmaker) as session:
        await work(session)
        raise RouteFailed


async def test_hooks_run_in_order_once_the_transaction_has_committed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[object] = []

    async def read_back() -> None:
        seen.append(await pairs(sessionmaker))

    async with sessionmaker() as session:
        await add_pair(session, "AAA")
        after_commit(session, read_back)
        after_commit(session, lambda: seen.append(COMMITTED_AT in session.info))
        after_commit(session, read_back)  # the same hook twice in a transaction: once
        await session.flush()
        assert seen == []
        await commit(session)
    assert seen == [["AAA"], True]


async def test_a_rolled_back_transaction_runs_none_of_its_hooks(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ran: list[str] = []
    async with sessionmaker() as session:
        await add_pair(session, "AAA")
        after_commit(session, lambda: ran.append("rolled back"))
        await session.rollback()
        await add_pair(session, "BBB")
        after_commit(session, lambda: ran.append("committed"))
        await commit(session)
    assert ran == ["committed"]

    async def add_and_hook(session: AsyncSession) -> None:
        await add_pair(session, "CCC")
        after_commit(session, lambda: ran.append("unit of work failed"))

    with pytest.raises(RouteFailed):
        await failed_unit_of_work(sessionmaker, add_and_hook)
    assert ran == ["committed"]
    assert await pairs(sessionmaker) == ["BBB"]


async def test_a_failing_hook_neither_fails_the_commit_nor_stops_the_others(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    ran: list[str] = []

    async def explode() -> None:
        raise RuntimeError("hook failed")

    async with unit_of_work(sessionmaker) as session:
        await add_pair(session, "AAA")
        after_commit(session, explode)
        after_commit(session, lambda: ran.append("next"))
    assert ran == ["next"]
    assert await pairs(sessionmaker) == ["AAA"]


async def test_an_event_staged_in_a_rolled_back_transaction_is_never_published(
    sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, session: AsyncSession
) -> None:
    async with sessionmaker() as tx:
        stage(tx, listed("NEVER/FLUSHED"))
        await tx.rollback()
        stage(tx, listed("FLUSHED/THEN/ROLLED/BACK"))
        await tx.flush()
        await tx.rollback()
        stage(tx, listed("COMMITTED/ONE"))
        await commit(tx)

    async def stage_and_flush(failed: AsyncSession) -> None:
        stage(failed, listed("FAILED/REQUEST"))
        await failed.flush()

    with pytest.raises(RouteFailed):
        await failed_unit_of_work(sessionmaker, stage_and_flush)

    # Publishing is part of commit(): what it sent is in the stream when it returns.
    entries: Any = await redis.xrange(STREAM)
    assert [Event.from_fields(fields).data["symbol"] for _, fields in entries] == ["COMMITTED/ONE"]
    assert await session.scalar(select(func.count()).select_from(OutboxEntry)) == 0


def test_shared_db_imports_nothing_from_shared_events() -> None:
    tree = ast.parse(Path(shared.db.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):  # every import, also one local to a function
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    assert "sqlalchemy" in imported  # the walk sees the module's imports
    assert not {name for name in imported if name.startswith("shared.events")}


async def test_a_read_session_gives_its_connection_back_after_each_statement(
    engine: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Routes that only read hold no connection (and no transaction) between statements,
    and see what other sessions have committed."""
    from shared.db import create_read_sessionmaker

    async with unit_of_work(sessionmaker) as session:
        await add_pair(session, "READ/USDT")
    reads = create_read_sessionmaker(engine)
    async with reads() as session:
        first = await session.scalar(select(func.count()).select_from(text("trading_pairs")))
        assert engine.pool.checkedout() == 0
        async with unit_of_work(sessionmaker) as other:
            await add_pair(other, "MORE/USDT")
        second = await session.scalar(select(func.count()).select_from(text("trading_pairs")))
        assert second == first + 1
        assert engine.pool.checkedout() == 0
