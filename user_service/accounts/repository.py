"""SQL of the users table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from user_service.models import User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def email_taken(self, email: str) -> bool:
        result = await self.session.execute(select(User.id).where(User.email == email))
        return result.first() is not None

    async def add(self, *, email: str, password_hash: str, permissions: list[str]) -> User:
        user = User(
            email=email,
            password_hash=password_hash,
            permissions=permissions,
            preferences={},
            trading_limits={},
        )
        self.session.add(user)
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def update_fields(self, user_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            update(User).where(User.id == user_id).values(**values, updated_at=datetime.now(UTC))
        )

    async def record_login(self, user_id: uuid.UUID, new_hash: str | None) -> None:
        values: dict[str, Any] = {"last_login_at": datetime.now(UTC)}
        if new_hash is not None:
            values["password_hash"] = new_hash
        await self.session.execute(update(User).where(User.id == user_id).values(**values))
