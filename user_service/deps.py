"""Dependencies of the user service, as ``Annotated`` aliases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request

from shared.deps import RedisDep, SessionDep
from shared.errors import DependencyUnavailable, NotFound
from shared.forwarding import trusted_proxies
from user_service.accounts.repository import UserRepository
from user_service.auth.service import AuthService
from user_service.key_vault import KeyVault
from user_service.models import User
from user_service.settings import UserSettings


async def get_user_settings(request: Request) -> UserSettings:
    settings: UserSettings = request.app.state.settings
    return settings


UserSettingsDep = Annotated[UserSettings, Depends(get_user_settings)]


async def get_auth_service(
    session: SessionDep, redis: RedisDep, settings: UserSettingsDep
) -> AuthService:
    return AuthService(session, redis, settings)


async def get_key_vault(request: Request) -> KeyVault:
    vault: KeyVault | None = request.app.state.key_vault
    if vault is None:
        raise DependencyUnavailable(
            "Exchange keys are unavailable: the server has no ENCRYPTION_KEY configured.",
            retry_after=60,
        )
    return vault


async def client_ip(request: Request, settings: UserSettingsDep) -> str | None:
    """The caller's address: the peer's, or what a trusted proxy (the gateway, listed in
    TRUSTED_PROXIES) forwarded for it; shared.forwarding."""
    peer = request.client.host if request.client else None
    return trusted_proxies(settings.trusted_proxies).client_address(
        peer, request.headers.get("x-forwarded-for")
    )


async def valid_user_id(user_id: Annotated[uuid.UUID, Path()], session: SessionDep) -> User:
    user = await UserRepository(session).get(user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
KeyVaultDep = Annotated[KeyVault, Depends(get_key_vault)]
ClientIpDep = Annotated[str | None, Depends(client_ip)]
ValidUser = Annotated[User, Depends(valid_user_id)]
