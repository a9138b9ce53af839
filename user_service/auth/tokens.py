"""Issuing access and refresh JWTs (verification lives in :mod:`shared.auth`)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from shared.auth import ACCESS, REFRESH
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenIssuer:
    """HS256 tokens with claims sub, sid, exp, iat, jti, type (and perms on access)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._secret = settings.jwt_secret
        self._algorithm = settings.jwt_algorithm
        self.access_ttl = settings.access_token_ttl_seconds
        self.refresh_ttl = settings.refresh_token_ttl_seconds

    def pair(
        self, *, user_id: uuid.UUID, session_id: str, refresh_jti: str, permissions: list[str]
    ) -> TokenPair:
        now = int(time.time())
        access = jwt.encode(
            {
                "sub": str(user_id),
                "sid": session_id,
                "iat": now,
                "exp": now + self.access_ttl,
                "jti": uuid.uuid4().hex,
                "type": ACCESS,
                "perms": permissions,
            },
            self._secret,
            algorithm=self._algorithm,
        )
        refresh = jwt.encode(
            {
                "sub": str(user_id),
                "sid": session_id,
                "iat": now,
                "exp": now + self.refresh_ttl,
                "jti": refresh_jti,
                "type": REFRESH,
            },
            self._secret,
            algorithm=self._algorithm,
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self.access_ttl)
