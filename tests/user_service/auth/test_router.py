"""Accounts and sessions: register, login, refresh rotation, logout, token attacks."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import session_key
from tests.stores import TEST_JWT_SECRET
from tests.user_service.sign_up import PASSWORD, bearer, login, register


async def test_account_life_cycle_register_login_me_refresh_logout(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    user = await register(client, "  Alice@Example.COM ")
    assert user["email"] == "alice@example.com"
    assert user["permissions"] == ["trade:paper"]
    assert "password" not in json.dumps(user)
    assert "hash" not in json.dumps(user)

    tokens = await login(client, "ALICE@example.com")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    claims = jwt.decode(tokens["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert set(claims) >= {"sub", "sid", "exp", "iat", "jti", "type", "perms"}
    assert claims["type"] == "access"
    assert claims["sub"] == user["id"]
    assert claims["perms"] == ["trade:paper"]
    session = await redis.hgetall(session_key(claims["sid"]))
    assert session["userId"] == user["id"]
    assert session["permissions"] == "trade:paper"
    assert 7 * 86400 - 10 < await redis.ttl(session_key(claims["sid"])) <= 7 * 86400

    me = await client.get("/user/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert me.json()["last_login_at"] is not None

    refreshed = await client.post(
        "/user/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/user/me", headers=bearer(new))).status_code == 200

    out = await client.post("/user/auth/logout", headers=bearer(new))
    assert out.status_code == 204
    after = await client.get("/user/me", headers=bearer(new))
    assert after.status_code == 401
    assert after.headers["content-type"] == "application/problem+json"
    again = await client.post("/user/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


async def test_duplicate_email_is_409_whatever_its_case(client: httpx.AsyncClient) -> None:
    await register(client, "bob@example.com")
    response = await client.post(
        "/user/auth/register", json={"email": "BOB@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert response.json()["status"] == 409


async def test_weak_passwords_and_bad_emails_are_422_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    for password, reason in [
        ("short1", "at least 10 characters"),
        ("onlyletterslong", "digit"),
        ("1234567890123", "letter"),
    ]:
        response = await client.post(
            "/user/auth/register", json={"email": "carol@example.com", "password": password}
        )
        assert response.status_code == 422, password
        body = response.json()
        assert reason in body["detail"]
        assert body["errors"][0]["loc"] == ["body", "password"]
    bad_email = await client.post(
        "/user/auth/register", json={"email": "not-an-email", "password": PASSWORD}
    )
    assert bad_email.status_code == 422
    assert (
        await client.post(
            "/user/auth/login", json={"email": "carol@example.com", "password": PASSWORD}
        )
    ).status_code == 401


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "dave@example.com")
    wrong = await client.post(
        "/user/auth/login", json={"email": "dave@example.com", "password": "wrong password 1"}
    )
    unknown = await client.post(
        "/user/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_rotated_refresh_token_reuse_revokes_session(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await register(client, "frank@example.com")
    first = await login(client, "frank@example.com")
    second = (
        await client.post("/user/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await client.post("/user/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "revoked" in replay.json()["detail"]
    sid = jwt.decode(second["access_token"], options={"verify_signature": False})["sid"]
    assert not await redis.exists(session_key(sid))
    assert (await client.get("/user/me", headers=bearer(second))).status_code == 401
    stolen = await client.post(
        "/user/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert stolen.status_code == 401


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_tokens_are_401_problems(client: httpx.AsyncClient) -> None:
    user = await register(client, "grace@example.com")
    tokens = await login(client, "grace@example.com")
    claims = jwt.decode(tokens["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    now = int(time.time())
    attacks = {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + ".",
        "wrong key": jwt.encode(claims, "another-secret-of-sufficient-length!", "HS256"),
        "refresh as access": tokens["refresh_token"],
        "expired": jwt.encode(
            {**claims, "iat": now - 1000, "exp": now - 10}, TEST_JWT_SECRET, "HS256"
        ),
        "unknown session": jwt.encode(
            {**claims, "sid": uuid.uuid4().hex}, TEST_JWT_SECRET, "HS256"
        ),
        "other user in session": jwt.encode(
            {**claims, "sub": str(uuid.uuid4())}, TEST_JWT_SECRET, "HS256"
        ),
        "garbage": "not.a.jwt",
    }
    for name, token in attacks.items():
        response = await client.get("/user/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.json()["status"] == 401, name
    assert (await client.get("/user/me")).status_code == 401
    access_as_refresh = await client.post(
        "/user/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert access_as_refresh.status_code == 401
    assert (await client.get("/user/me", headers=bearer(tokens))).json()["id"] == user["id"]


async def test_logout_of_all_sessions_ends_every_session(client: httpx.AsyncClient) -> None:
    await register(client, "heidi@example.com")
    laptop = await login(client, "heidi@example.com")
    phone = await login(client, "heidi@example.com")
    out = await client.post(
        "/user/auth/logout", json={"all_sessions": True}, headers=bearer(laptop)
    )
    assert out.status_code == 204
    assert (await client.get("/user/me", headers=bearer(phone))).status_code == 401


async def test_a_bcrypt_hash_still_logs_in_and_is_upgraded_to_argon2id(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from pwdlib.hashers.bcrypt import BcryptHasher

    legacy = BcryptHasher().hash(PASSWORD)
    await session.execute(
        text("INSERT INTO users (email, password_hash) VALUES ('old@example.com', :h)"),
        {"h": legacy},
    )
    await session.commit()
    await login(client, "old@example.com")
    stored = (
        await session.execute(
            text("SELECT password_hash FROM users WHERE email = 'old@example.com'")
        )
    ).scalar_one()
    assert stored.startswith("$argon2id$")
    await login(client, "old@example.com")


async def test_a_password_bcrypt_cannot_take_is_a_wrong_password_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    from pwdlib.hashers.bcrypt import BcryptHasher

    await session.execute(
        text("INSERT INTO users (email, password_hash) VALUES ('older@example.com', :h)"),
        {"h": BcryptHasher().hash(PASSWORD)},
    )
    await session.commit()
    for password in (PASSWORD + "x" * 80, "a\u0000b"):
        response = await client.post(
            "/user/auth/login", json={"email": "older@example.com", "password": password}
        )
        assert response.status_code == 401, response.text
    # Registration refuses an over-long password with the reason.
    response = await client.post(
        "/user/auth/register", json={"email": "long@example.com", "password": "a1" * 100}
    )
    assert response.status_code == 422
    assert "at most 128 characters" in response.text
