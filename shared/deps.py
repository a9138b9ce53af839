"""FastAPI dependencies every service uses, as ``Annotated`` aliases.

Dependencies that do no blocking I/O are ``async def``: FastAPI runs a plain ``def``
dependency on a worker thread (``run_in_threadpool``), a thread hop on every request for
what is an attribute read (docs/architecture.md, the request path).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, bearer_token, verify_access_token
from shared.db import unit_of_work
from shared.errors import Unauthorized
from shared.settings import ServiceSettings


async def get_app_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: commit on success, roll back on error, then publish."""
    async with unit_of_work(request.app.state.sessionmaker) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for a route that only reads (autocommit: no BEGIN/COMMIT round trips)."""
    async with request.app.state.read_sessionmaker() as session:
        yield session


async def require_internal_token(
    settings: Annotated[ServiceSettings, Depends(get_app_settings)],
    token: Annotated[str | None, Header(alias="X-Internal-Token")] = None,
) -> None:
    """Service-to-service routes (``/*/internal/*``): the shared internal token, compared
    in constant time. Without a configured token (or with a placeholder) every call is
    refused."""
    if (
        token is None
        or not settings.internal_token_set
        or not hmac.compare_digest(token.encode(), settings.internal_api_token.encode())
    ):
        raise Unauthorized("A valid X-Internal-Token header is required.")


async def get_principal(request: Request) -> Principal:
    """The caller of an authenticated route (the token and its live session checked)."""
    token = bearer_token(request.headers.get("authorization"))
    state = request.app.state
    settings: ServiceSettings = state.settings
    principal = await verify_access_token(
        token, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm, redis=state.redis
    )
    request.scope.setdefault("state", {})["user_id"] = str(principal.user_id)
    return principal


SettingsDep = Annotated[ServiceSettings, Depends(get_app_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
# scope="function": commit before the response is sent, so a failed commit is never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
CurrentUser = Annotated[Principal, Depends(get_principal)]
InternalCaller = Depends(require_internal_token)
