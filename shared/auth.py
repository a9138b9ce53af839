"""Access-token verification every service shares (the user service issues the tokens).

A token is only good while its session exists in Redis (``user:session:{sid}``), so
logout and refresh-token reuse take effect at once on every service, not at expiry.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from redis.asyncio import Redis

from shared.errors import Unauthorized

ACCESS = "access"
REFRESH = "refresh"
REQUIRED_CLAIMS = ["sub", "sid", "exp", "iat", "jti", "type"]


def session_key(session_id: str) -> str:
    return f"user:session:{session_id}"


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    user_id: uuid.UUID
    session_id: str
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def decode_token(token: str, *, secret: str, algorithm: str, expected_type: str) -> dict[str, Any]:
    """Check signature, algorithm, expiry, required claims and type; 401 otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[algorithm], options={"require": REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is invalid.") from exc
    if claims.get("type") != expected_type:
        raise Unauthorized(f"An {expected_type} token is required.")
    return claims


class VerifiedTokens:
    """Access tokens whose signature has been checked, so a client that sends the same
    token on every request pays for the HMAC check (and PyJWT's key preparation) and the
    principal's parsing once.

    A token's claims cannot change without its signature failing, so they are kept, keyed
    by the token and the key that verified it; expiry is checked again on every use (an
    expired entry goes back through :func:`decode_token`, which says so). The session
    check that makes logout immediate is never cached. Bounded: emptied when full.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._tokens: dict[tuple[str, str, str], tuple[float, dict[str, Any], Principal | None]]
        self._tokens = {}

    def verify(
        self, token: str, *, secret: str, algorithm: str
    ) -> tuple[dict[str, Any], Principal | None]:
        """The claims, and the principal they name (None when ``sub`` is no user id)."""
        key = (token, secret, algorithm)
        hit = self._tokens.get(key)
        if hit is not None and time.time() < hit[0]:
            return hit[1], hit[2]
        claims = decode_token(token, secret=secret, algorithm=algorithm, expected_type=ACCESS)
        principal = _principal(claims)
        if len(self._tokens) >= self.capacity:
            self._tokens.clear()
        self._tokens[key] = (float(claims["exp"]), claims, principal)
        return claims, principal


def _principal(claims: dict[str, Any]) -> Principal | None:
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        return None
    return Principal(
        user_id=user_id,
        session_id=str(claims["sid"]),
        permissions=frozenset(claims.get("perms") or ()),
    )


_verified = VerifiedTokens()


async def verify_access_token(
    token: str, *, secret: str, algorithm: str, redis: Redis
) -> Principal:
    """A principal for a valid access token whose session is still alive."""
    claims, principal = _verified.verify(token, secret=secret, algorithm=algorithm)
    owner = await redis.hget(session_key(str(claims["sid"])), "userId")
    if owner is None or owner != claims["sub"]:
        raise Unauthorized("The session has ended; log in again.")
    if principal is None:
        raise Unauthorized("The token is invalid.")
    return principal


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Missing bearer token.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Expected 'Authorization: Bearer <token>'.")
    return token.strip()
