"""/user/me: the caller's profile, preferences and trading limits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from shared.deps import CurrentUser, ReadSessionDep, RedisDep, SessionDep
from shared.strict_query import StrictQueryRoute
from user_service.accounts.schemas import Preferences, TradingLimits, UserRead
from user_service.accounts.service import AccountService

router = APIRouter(route_class=StrictQueryRoute, prefix="/user/me", tags=["account"])


async def get_account_service(session: SessionDep, redis: RedisDep) -> AccountService:
    return AccountService(session, redis)


async def get_account_reader(session: ReadSessionDep, redis: RedisDep) -> AccountService:
    """For the routes that only read (no transaction round trips)."""
    return AccountService(session, redis)


Accounts = Annotated[AccountService, Depends(get_account_service)]
AccountReader = Annotated[AccountService, Depends(get_account_reader)]


@router.get("")
async def me(principal: CurrentUser, accounts: AccountReader) -> UserRead:
    """The caller's account (never the password hash)."""
    return UserRead.model_validate(await accounts.get(principal.user_id))


@router.get("/preferences")
async def get_preferences(principal: CurrentUser, accounts: AccountReader) -> dict[str, Any]:
    """The caller's preferences."""
    return await accounts.preferences(principal.user_id)


@router.put("/preferences")
async def put_preferences(
    body: Preferences, principal: CurrentUser, accounts: Accounts
) -> dict[str, Any]:
    """Replace the caller's preferences."""
    return await accounts.replace_preferences(principal.user_id, body)


@router.get("/limits")
async def get_limits(principal: CurrentUser, accounts: AccountReader) -> dict[str, Any]:
    """The caller's trading limits (Decimal strings; absent means no limit)."""
    return await accounts.limits(principal.user_id)


@router.put("/limits")
async def put_limits(
    body: TradingLimits, principal: CurrentUser, accounts: Accounts
) -> dict[str, Any]:
    """Replace the caller's trading limits."""
    return await accounts.replace_limits(principal.user_id, body)
