"""Test fixtures: real PostgreSQL and Redis, isolated per run and per test.

Each run gets a scratch database migrated to head and a Redis database index of its own
(tests/stores.py); between tests every table is truncated and the Redis database flushed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, create_sessionmaker
from shared.redis import create_redis
from tests.stores import (
    TEST_ENCRYPTION_KEY,
    TEST_INTERNAL_TOKEN,
    TEST_JWT_SECRET,
    RedisIndexLock,
    create_database,
    drop_database,
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database("tradebot_test")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    lock = RedisIndexLock()
    yield lock.url
    lock.release()


@pytest.fixture(scope="session", autouse=True)
def service_env(database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """The environment every service (in-process or subprocess) reads its settings from."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "INTERNAL_API_TOKEN": TEST_INTERNAL_TOKEN,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "MARKET_EXCHANGES": "sim",
        "EVENT_CLAIM_IDLE_MS": "1000",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = create_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine, redis: Redis) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine, redis)


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


_TABLES: list[str] = []


@pytest.fixture(autouse=True)
async def clean_state(engine: AsyncEngine, redis: Redis) -> None:
    """Each test starts with empty tables and an empty Redis database."""
    if not _TABLES:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
            _TABLES.extend(row[0] for row in rows)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))
    await redis.flushdb()
