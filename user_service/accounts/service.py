"""The caller's account: profile, preferences (cached in Redis) and trading limits."""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import NotFound
from user_service.accounts.repository import UserRepository
from user_service.accounts.schemas import Preferences, TradingLimits
from user_service.models import User

PREFERENCES_CACHE_TTL = 300


def preferences_key(user_id: uuid.UUID) -> str:
    return f"user:preferences:{user_id}"


class AccountService:
    def __init__(self, session: AsyncSession, redis: Redis) -> None:
        self.users = UserRepository(session)
        self.redis = redis

    async def get(self, user_id: uuid.UUID) -> User:
        user = await self.users.get(user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def preferences(self, user_id: uuid.UUID) -> dict[str, Any]:
        cached = await self.redis.get(preferences_key(user_id))
        if cached is not None:
            value: dict[str, Any] = json.loads(cached)
            return value
        prefs = (await self.get(user_id)).preferences or {}
        await self.redis.set(preferences_key(user_id), json.dumps(prefs), ex=PREFERENCES_CACHE_TTL)
        return prefs

    async def replace_preferences(self, user_id: uuid.UUID, prefs: Preferences) -> dict[str, Any]:
        await self.get(user_id)
        stored = prefs.stored()
        await self.users.update_fields(user_id, preferences=stored)
        await self.redis.delete(preferences_key(user_id))
        return stored

    async def limits(self, user_id: uuid.UUID) -> dict[str, Any]:
        return (await self.get(user_id)).trading_limits or {}

    async def replace_limits(self, user_id: uuid.UUID, limits: TradingLimits) -> dict[str, Any]:
        await self.get(user_id)
        stored = limits.stored()
        await self.users.update_fields(user_id, trading_limits=stored)
        return stored
