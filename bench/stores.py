"""A benchmark's own PostgreSQL database (migrated) and Redis database index, the same
isolation the test suite uses, so a bench never touches another run's data."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.migrate import upgrade
from shared.redis import create_redis
from tests.conftest import _admin, _redis_base, _server_url, _with_database

_LOCK = "tradebot:test-db-lock:{}"


@dataclass
class ScratchStores:
    database_url: str
    redis_url: str
    _server: str
    _name: str
    _index: int
    _token: str
    _lock: Redis

    @classmethod
    async def open(cls) -> ScratchStores:
        """Create and migrate a database; take a free Redis index (held by a lock key)."""
        server = _server_url()
        name = f"tradebot_bench_{uuid.uuid4().hex[:8]}"
        await _admin(server, f'CREATE DATABASE "{name}"')
        database_url = _with_database(server, name)
        lock = create_redis(f"{_redis_base()}/0")
        token = uuid.uuid4().hex
        try:
            await asyncio.to_thread(upgrade, database_url)
            for index in range(15, 0, -1):
                if await lock.set(_LOCK.format(index), token, nx=True, ex=3600):
                    break
            else:
                raise SystemExit("no free Redis database index")
        except BaseException:
            await lock.aclose()
            await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            raise
        return cls(database_url, f"{_redis_base()}/{index}", server, name, index, token, lock)

    async def close(self) -> None:
        """Release the Redis index (if still ours) and drop the database."""
        key = _LOCK.format(self._index)
        if await self._lock.get(key) == self._token:
            await self._lock.delete(key)
        await self._lock.aclose()
        await _admin(self._server, f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
