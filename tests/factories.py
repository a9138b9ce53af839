"""Row and token factories for tests of any service.

Tokens have the shape :mod:`shared.auth` verifies (the user service issues the same):
an HS256 access JWT whose ``sid`` names a live ``user:session:{sid}`` hash in Redis.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import session_key
from tests.stores import TEST_JWT_SECRET


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a test class

    id: uuid.UUID
    email: str
    token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_user(
    session: AsyncSession,
    redis: Redis,
    *,
    email: str | None = None,
    permissions: tuple[str, ...] = ("trade:paper",),
) -> TestUser:
    """Insert a user row and open a session for it; returns a bearer token."""
    user_id = uuid.uuid4()
    email = email or f"user-{user_id.hex[:8]}@example.com"
    await session.execute(
        text(
            "INSERT INTO users (id, email, password_hash, permissions) "
            "VALUES (:id, :email, 'not-a-real-hash', CAST(:perms AS jsonb))"
        ),
        {"id": user_id, "email": email, "perms": _json_list(permissions)},
    )
    await session.commit()
    token, sid = await issue_access_token(redis, user_id, permissions)
    return TestUser(id=user_id, email=email, token=token, session_id=sid)


async def issue_access_token(
    redis: Redis,
    user_id: uuid.UUID,
    permissions: tuple[str, ...] = ("trade:paper",),
    *,
    ttl: int = 900,
) -> tuple[str, str]:
    sid = uuid.uuid4().hex
    now = int(time.time())
    await redis.hset(
        session_key(sid),
        mapping={
            "userId": str(user_id),
            "expiresAt": str(now + ttl),
            "permissions": ",".join(permissions),
        },
    )
    await redis.expire(session_key(sid), ttl)
    token = jwt.encode(
        {
            "sub": str(user_id),
            "sid": sid,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "type": "access",
            "perms": list(permissions),
        },
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    return token, sid


def _json_list(items: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(items))
