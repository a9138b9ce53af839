"""Async SQLAlchemy 2: the engine, the session factory, the unit of work and after-commit
hooks.

A request gets one session; the dependency commits when the route returns and rolls back
when it raises. Side effects that must not leave before the commit that made them true
(the events staged in the outbox, a live push, a worker's wake-up) are registered with
:func:`after_commit` and run by :func:`commit` once the transaction has committed; a
transaction that rolls back runs none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, SessionTransaction

log = structlog.get_logger("db")

# Stable constraint names so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every service's ORM models (one metadata, one schema)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str, *, pool_size: int = 10, pool_timeout: float = 5.0, **kwargs: Any
) -> AsyncEngine:
    """An asyncpg engine whose connects and statements cannot hang a request forever.

    A request that waits ``pool_timeout`` seconds for a connection gets a 503 with
    ``Retry-After`` (shared.errors): after an outage, clients retrying at once are shed
    quickly instead of queueing behind each other.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args={"timeout": 3, "command_timeout": 30},
        json_serializer=_json_text,
        **kwargs,
    )
    # Many ORM rows of one table flushed together go out as one multi-row INSERT (as
    # they already do when RETURNING is needed), not one execution per row through
    # asyncpg's executemany: a burst of bot fills is a handful of statements.
    engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def _json_text(value: Any) -> str:
    """JSON/JSONB values written by orjson (outbox entries on the order path)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_sessionmaker(
    engine: AsyncEngine, redis: Redis | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that carry the Redis client their staged events are published to."""
    return async_sessionmaker(engine, expire_on_commit=False, info={"redis": redis})


# session.info key: the event loop's time of the session's last commit (before its
# after-commit hooks ran, so before its staged events were published), for latency figures.
COMMITTED_AT = "committed_at"

# What runs once a transaction has committed: a coroutine function (awaited) or a quick
# synchronous callable.
AfterCommitHook = Callable[[], Awaitable[None] | None]

_AFTER_COMMIT = "after_commit_hooks"


@dataclass(slots=True)
class _Hooks:
    """The hooks of one transaction: they belong to it and die with it."""

    transaction: SessionTransaction
    hooks: dict[AfterCommitHook, None] = field(default_factory=dict)  # an ordered set


def after_commit(session: AsyncSession, hook: AfterCommitHook) -> None:
    """Run ``hook`` once the session's current transaction has committed (by :func:`commit`
    or :func:`unit_of_work`); if the transaction rolls back instead, the hook never runs.

    Hooks run in the order registered, a hook registered twice in one transaction once.
    """
    sync_session = session.sync_session
    transaction = sync_session.get_transaction() or sync_session.begin()
    pending: _Hooks | None = session.info.get(_AFTER_COMMIT)
    if pending is None or pending.transaction is not transaction:
        # The first hook of this transaction; any left over belong to one that rolled back.
        pending = session.info[_AFTER_COMMIT] = _Hooks(transaction)
    pending.hooks[hook] = None


async def commit(session: AsyncSession) -> None:
    """Commit the session's transaction, then run the hooks registered on it.

    A hook that fails is logged and the others still run: the data is committed, so the
    caller's work has succeeded.
    """
    transaction = session.sync_session.get_transaction()
    await session.commit()
    session.info[COMMITTED_AT] = asyncio.get_running_loop().time()
    pending: _Hooks | None = session.info.pop(_AFTER_COMMIT, None)
    if pending is None or pending.transaction is not transaction:
        return
    for hook in pending.hooks:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("after_commit_hook_failed", hook=repr(hook))


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session that commits on success (then runs its after-commit hooks, e.g. publishes
    its staged events) and rolls back on error."""
    async with sessionmaker() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await session.rollback()
            raise


async def ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class ReadOnlySession(AsyncSession):
    """A session for routes that only read, on an autocommit connection that goes back to
    the pool as soon as each statement's rows are read (async results are buffered), not
    when the request ends: under load a request spends most of its time waiting for the
    event loop, and holding a connection through that emptied the pool."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._released(super().execute(*args, **kwargs))

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await self._released(super().scalars(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._released(super().scalar(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._released(super().get(*args, **kwargs))

    async def _released(self, statement: Awaitable[Any]) -> Any:
        try:
            result = await statement
        except BaseException:
            # The statement's own error is the one that counts (shared.errors maps it).
            with contextlib.suppress(Exception):
                await self.rollback()
            raise
        await self.commit()  # autocommit: no round trip, only the connection's release
        return result


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for routes that only read (:class:`ReadOnlySession`): autocommit, so a
    query is one round trip instead of BEGIN, the query and COMMIT. Nothing is lost: at
    READ COMMITTED every statement sees its own snapshot inside a transaction too. Never
    for writes (each statement would commit on its own)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        class_=ReadOnlySession,
        expire_on_commit=False,
    )
