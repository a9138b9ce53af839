"""/user/auth/*: register, login, refresh, logout."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from shared.deps import CurrentUser
from shared.strict_query import StrictQueryRoute
from user_service.accounts.schemas import UserRead
from user_service.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
)
from user_service.auth.tokens import TokenPair
from user_service.deps import AuthServiceDep, ClientIpDep

router = APIRouter(route_class=StrictQueryRoute, prefix="/user/auth", tags=["auth"])


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterRequest, auth: AuthServiceDep) -> UserRead:
    """Create an account (paper trading only until live trading is granted)."""
    return UserRead.model_validate(await auth.register(body))


@router.post("/login")
async def login(body: LoginRequest, auth: AuthServiceDep, ip: ClientIpDep) -> TokenResponse:
    """Exchange email and password for an access and a refresh token."""
    return _tokens(await auth.login(body.email, body.password, ip))


@router.post("/refresh")
async def refresh(body: RefreshRequest, auth: AuthServiceDep) -> TokenResponse:
    """Rotate the refresh token: a new pair; the presented one is spent."""
    return _tokens(await auth.refresh_token(body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    principal: CurrentUser, auth: AuthServiceDep, body: LogoutRequest | None = None
) -> Response:
    """End this session (or every session with `all_sessions`); its tokens stop at once."""
    await auth.logout(principal, all_sessions=bool(body and body.all_sessions))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
