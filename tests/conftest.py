"""Test harness: real PostgreSQL and Redis, isolated per run.

Each run creates its own database (``tradebot_test_<random>``) on the server named by
``TEST_DATABASE_URL`` / ``DATABASE_URL`` (default: 127.0.0.1:5432, user postgres), migrates
it to head with Alembic, and drops it at the end. Redis gets a database index of its own,
held by a lock key in db 0 for the length of the run, so concurrent runs never collide.
Between tests every table is truncated and the Redis database flushed.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as sync_redis
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, create_sessionmaker
from shared.migrate import upgrade
from shared.redis import create_redis
from shared.settings import normalise_database_url

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
TEST_ENCRYPTION_KEY = "uV8o2m7cOq5Vt4y7V0X2w9b3bW1tYxkzS1r3mZq8a0E="  # Fernet key, tests only


def _server_url() -> str:
    raw = (
        os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or ("postgresql://postgres@127.0.0.1:5432/test")
    )
    return normalise_database_url(raw)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _redis_base() -> str:
    raw = (
        os.environ.get("TEST_REDIS_URL")
        or os.environ.get("REDIS_URL")
        or "redis://127.0.0.1:6379/0"
    )
    parts = urlsplit(raw)
    return urlunsplit(parts._replace(path=""))


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(
        _with_database(url, "postgres"), pool_size=1, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    server = _server_url()
    name = f"tradebot_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_database(server, name)
    upgrade(url)
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    base = _redis_base()
    lock = sync_redis.Redis.from_url(base + "/0")
    token = uuid.uuid4().hex
    for index in range(15, 0, -1):
        if lock.set(f"tradebot:test-db-lock:{index}", token, nx=True, ex=3 * 3600):
            break
    else:
        pytest.fail("every Redis database index is held by another test run")
    yield f"{base}/{index}"
    if lock.get(f"tradebot:test-db-lock:{index}") == token.encode():
        lock.delete(f"tradebot:test-db-lock:{index}")
    lock.close()


@pytest.fixture(scope="session", autouse=True)
def service_env(database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """The environment every service (in-process or subprocess) reads its settings from."""
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
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
