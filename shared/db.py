"""Async SQLAlchemy 2: the engine, the session factory and the request's unit of work.

A request gets one session; the dependency commits when the route returns and rolls back
when it raises, then publishes the events the request staged in the outbox
(see :mod:`shared.events`), so an event never leaves before the commit that made it true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

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


def create_engine(url: str, *, pool_size: int = 10, **kwargs: Any) -> AsyncEngine:
    """An asyncpg engine whose connects and statements cannot hang a request forever."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
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


# session.info key: the event loop's time of the unit of work's commit (before the outbox
# is published), for latency figures.
COMMITTED_AT = "committed_at"


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session that commits on success, rolls back on error, then flushes the outbox."""
    from shared.events import publish_staged  # local: events imports db

    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
            session.info[COMMITTED_AT] = asyncio.get_running_loop().time()
        except BaseException:
            await session.rollback()
            raise
    await publish_staged(session)


async def ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
