"""AuthService: register, login, refresh_token, logout (names of the original design)."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import REFRESH, Principal, decode_token
from shared.errors import Conflict, Unauthorized, ValidationFailed
from user_service.accounts.repository import UserRepository
from user_service.auth.schemas import RegisterRequest
from user_service.auth.sessions import Rotation, SessionStore
from user_service.auth.throttle import LoginThrottle
from user_service.auth.tokens import TokenIssuer, TokenPair
from user_service.models import User
from user_service.passwords import hash_password, verify_password
from user_service.settings import UserSettings

DEFAULT_PERMISSIONS = ["trade:paper"]
BAD_CREDENTIALS = "Invalid email or password."


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problems(password: str, email: str, settings: UserSettings) -> list[str]:
    """What is wrong with a new password (empty when it meets the policy)."""
    problems = []
    if len(password) < settings.password_min_length:
        problems.append(f"must be at least {settings.password_min_length} characters long")
    if len(password) > settings.password_max_length:
        problems.append(f"must be at most {settings.password_max_length} characters long")
    if not any(c.isalpha() for c in password):
        problems.append("must contain a letter")
    if not any(c.isdigit() for c in password):
        problems.append("must contain a digit")
    if password.strip().lower() == email or password.lower() == email.split("@")[0]:
        problems.append("must not be the email address")
    return problems


class AuthService:
    def __init__(self, session: AsyncSession, redis: Redis, settings: UserSettings) -> None:
        self.users = UserRepository(session)
        self.settings = settings
        self.sessions = SessionStore(redis, ttl_seconds=settings.refresh_token_ttl_seconds)
        self.throttle = LoginThrottle(redis, settings.login_throttle)
        self.tokens = TokenIssuer(settings)

    async def register(self, data: RegisterRequest) -> User:
        """Create an account with paper-trading permission; 409 if the email is taken."""
        email = normalise_email(str(data.email))
        problems = password_problems(data.password, email, self.settings)
        if problems:
            raise ValidationFailed(
                "The password does not meet the policy: " + "; ".join(problems) + ".",
                extra={
                    "errors": [
                        {"loc": ["body", "password"], "msg": p, "type": "password_policy"}
                        for p in problems
                    ]
                },
            )
        if await self.users.email_taken(email):
            raise Conflict("An account with this email already exists.")
        password_hash = await hash_password(data.password)
        try:
            return await self.users.add(
                email=email, password_hash=password_hash, permissions=list(DEFAULT_PERMISSIONS)
            )
        except IntegrityError as exc:  # a concurrent registration of the same email
            raise Conflict("An account with this email already exists.") from exc

    async def login(self, email: str, password: str, client_ip: str | None) -> TokenPair:
        """Tokens for a new session; the same 401 for a wrong password and an unknown email."""
        email = normalise_email(email)
        await self.throttle.check(email, client_ip)
        user = await self.users.get_by_email(email)
        ok, new_hash = await verify_password(password, user.password_hash if user else None)
        if user is None or not ok or not user.is_active:
            await self.throttle.record_failure(email, client_ip)
            raise Unauthorized(BAD_CREDENTIALS)
        await self.throttle.record_success(email, client_ip)
        await self.users.record_login(user.id, new_hash)
        sid, jti = await self.sessions.open(user.id, list(user.permissions))
        return self.tokens.pair(
            user_id=user.id, session_id=sid, refresh_jti=jti, permissions=list(user.permissions)
        )

    async def refresh_token(self, token: str) -> TokenPair:
        """Rotate: a new pair for the session; replaying a rotated token ends the session."""
        claims = decode_token(
            token,
            secret=self.settings.jwt_secret,
            algorithm=self.settings.jwt_algorithm,
            expected_type=REFRESH,
        )
        sid, sub = str(claims["sid"]), str(claims["sub"])
        outcome, new_jti = await self.sessions.rotate(
            sid, presented_jti=str(claims["jti"]), user_id=sub
        )
        if outcome is Rotation.REUSED:
            raise Unauthorized("This refresh token was already used; the session is revoked.")
        if outcome is not Rotation.ROTATED:
            raise Unauthorized("The session has ended; log in again.")
        try:
            user = await self.users.get(uuid.UUID(sub))
        except ValueError:
            user = None
        if user is None or not user.is_active:
            await self.sessions.revoke(sid, sub)
            raise Unauthorized("The account no longer exists.")
        permissions = list(user.permissions)
        await self.sessions.set_permissions(sid, permissions)
        return self.tokens.pair(
            user_id=user.id, session_id=sid, refresh_jti=new_jti, permissions=permissions
        )

    async def logout(self, principal: Principal, *, all_sessions: bool = False) -> None:
        """End the caller's session (or all of them): its tokens stop working at once."""
        if all_sessions:
            await self.sessions.revoke_all(principal.user_id)
        else:
            await self.sessions.revoke(principal.session_id, principal.user_id)
