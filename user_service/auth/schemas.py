"""Request and response bodies of /user/auth/*."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints

from shared.validation import SINGLE_LINE

# Generous here so that the policy (auth.service.password_problems) names what is wrong.
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RegisterRequest(BaseModel):
    email: Annotated[EmailStr, Field(max_length=320)]
    password: Annotated[Password, StringConstraints(pattern=SINGLE_LINE)]


class LoginRequest(BaseModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320, pattern=SINGLE_LINE)]
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: Annotated[
        str, StringConstraints(min_length=1, max_length=4096, pattern=SINGLE_LINE)
    ]


class LogoutRequest(BaseModel):
    all_sessions: bool = False


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int
