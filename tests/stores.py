"""Scratch stores for the tests and the benchmarks, and the secrets they run the services with.

A scratch PostgreSQL database (``<prefix>_<random>``) lives on the server named by
``TEST_DATABASE_URL`` / ``DATABASE_URL`` (default: 127.0.0.1:5432, user postgres) and is
migrated to head unless asked not to. A scratch Redis database index is held by a lock key
in db 0 of ``TEST_REDIS_URL`` / ``REDIS_URL`` (default: 127.0.0.1:6379) until released, so
concurrent test runs and benchmarks never share data.

Everything here is synchronous (the database statements run on a loop of their own, as the
migrations do); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import text

from shared.db import create_engine
from shared.settings import normalise_database_url
from tradebot.migrate import upgrade

TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
TEST_INTERNAL_TOKEN = "test-internal-token-of-the-suite"
TEST_ENCRYPTION_KEY = "uV8o2m7cOq5Vt4y7V0X2w9b3bW1tYxkzS1r3mZq8a0E="  # Fernet key, tests only

_REDIS_LOCK = "tradebot:test-db-lock:{}"


def _postgres_server_url() -> str:
    raw = (
        os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )
    return normalise_database_url(raw)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _admin(statement: str) -> None:
    """Run one statement on the server's `postgres` database, outside a transaction."""

    async def run() -> None:
        engine = create_engine(
            _with_database(_postgres_server_url(), "postgres"),
            pool_size=1,
            isolation_level="AUTOCOMMIT",
        )
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def create_database(prefix: str, *, migrate: bool = True) -> str:
    """Create a database of its own (migrated to head unless ``migrate=False``); its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = _with_database(_postgres_server_url(), name)
    if migrate:
        try:
            upgrade(url)
        except BaseException:
            drop_database(url)
            raise
    return url


def drop_database(url: str) -> None:
    """Drop a database made by `create_database`, closing whatever is still connected."""
    name = urlsplit(url).path.lstrip("/")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RedisIndexLock:
    """A Redis database index of our own, held by a lock key in db 0 until `release`."""

    def __init__(self, ttl_seconds: int = 3 * 3600) -> None:
        raw = (
            os.environ.get("TEST_REDIS_URL")
            or os.environ.get("REDIS_URL")
            or "redis://127.0.0.1:6379/0"
        )
        base = urlunsplit(urlsplit(raw)._replace(path=""))
        self._lock = redis.Redis.from_url(f"{base}/0")
        self._token = uuid.uuid4().hex
        for index in range(15, 0, -1):
            if self._lock.set(_REDIS_LOCK.format(index), self._token, nx=True, ex=ttl_seconds):
                break
        else:
            self._lock.close()
            raise RuntimeError("every Redis database index is held by another test run")
        self._index = index
        self.url = f"{base}/{index}"

    def release(self) -> None:
        """Give the index back (if the lock is still ours) and close the lock connection."""
        key = _REDIS_LOCK.format(self._index)
        if self._lock.get(key) == self._token.encode():
            self._lock.delete(key)
        self._lock.close()
