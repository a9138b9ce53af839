"""/user/internal/*: called by other services with X-Internal-Token; never via the gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from shared.deps import InternalCaller, SessionDep
from shared.strict_query import StrictQueryRoute
from shared.validation import ExchangeId, Label
from user_service.accounts.repository import UserRepository
from user_service.deps import KeyVaultDep, ValidUser
from user_service.exchange_keys.schemas import ExchangeKeySecret
from user_service.exchange_keys.service import ExchangeKeyService
from user_service.internal.schemas import InternalUser, PermissionsUpdate

router = APIRouter(
    route_class=StrictQueryRoute,
    prefix="/user/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
)


@router.get("/users/{user_id}")
async def get_user(user: ValidUser) -> InternalUser:
    """A user's permissions, trading limits and preferences."""
    return InternalUser(
        id=user.id,
        email=user.email,
        permissions=list(user.permissions),
        trading_limits=user.trading_limits or {},
        preferences=user.preferences or {},
    )


@router.get("/users/{user_id}/exchange-keys/{exchange}")
async def get_exchange_key(
    exchange: Annotated[ExchangeId, Path()],
    user: ValidUser,
    session: SessionDep,
    vault: KeyVaultDep,
    label: Annotated[Label | None, Query()] = None,
) -> ExchangeKeySecret:
    """The user's decrypted key for an exchange (label `default` unless named)."""
    return await ExchangeKeyService(session, vault).decrypted(user.id, exchange, label)


@router.put("/users/{user_id}/permissions")
async def set_permissions(
    body: PermissionsUpdate, user: ValidUser, session: SessionDep
) -> InternalUser:
    """Grant or withdraw permissions (e.g. `trade:live`); sessions see it at next refresh."""
    permissions: list[str] = sorted({"trade:paper", *body.permissions})
    await UserRepository(session).update_fields(user.id, permissions=permissions)
    user.permissions = permissions
    return InternalUser.model_validate(user)
