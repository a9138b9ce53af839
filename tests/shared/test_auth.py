"""Access-token checks: a token whose signature was checked once is remembered, but the
remembered claims never outlive the token, its session, or the key that verified it."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from redis.asyncio import Redis

from shared.auth import session_key, verify_access_token
from shared.errors import Unauthorized
from tests.factories import issue_access_token
from tests.stores import TEST_JWT_SECRET


async def _verify(token: str, redis: Redis, secret: str = TEST_JWT_SECRET) -> uuid.UUID:
    principal = await verify_access_token(token, secret=secret, algorithm="HS256", redis=redis)
    return principal.user_id


async def test_a_remembered_token_stops_working_when_its_session_ends(redis: Redis) -> None:
    user_id = uuid.uuid4()
    token, sid = await issue_access_token(redis, user_id)
    assert await _verify(token, redis) == user_id
    assert await _verify(token, redis) == user_id  # the second time from memory
    await redis.delete(session_key(sid))  # logout
    with pytest.raises(Unauthorized, match="session has ended"):
        await _verify(token, redis)


async def test_a_remembered_token_expires_on_time(redis: Redis) -> None:
    user_id, sid, now = uuid.uuid4(), uuid.uuid4().hex, int(time.time())
    await redis.hset(session_key(sid), mapping={"userId": str(user_id)})
    await redis.expire(session_key(sid), 60)
    claims = {
        "sub": str(user_id),
        "sid": sid,
        "iat": now,
        "exp": now + 2,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    assert await _verify(token, redis) == user_id
    time.sleep(2.2)
    with pytest.raises(Unauthorized, match="expired"):
        await _verify(token, redis)


async def test_a_token_remembered_under_one_key_is_checked_again_under_another(
    redis: Redis,
) -> None:
    token, _sid = await issue_access_token(redis, uuid.uuid4())
    await _verify(token, redis)
    with pytest.raises(Unauthorized, match="invalid"):
        await _verify(token, redis, secret="another-secret-that-is-long-enough-for-hs256")


async def test_a_refresh_token_is_refused_where_an_access_token_is_needed(redis: Redis) -> None:
    user_id, sid, now = uuid.uuid4(), uuid.uuid4().hex, int(time.time())
    await redis.hset(session_key(sid), mapping={"userId": str(user_id)})
    await redis.expire(session_key(sid), 60)
    claims = {
        "sub": str(user_id),
        "sid": sid,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "type": "refresh",
    }
    token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="access token is required"):
            await _verify(token, redis)
