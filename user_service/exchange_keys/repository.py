"""SQL of the exchange_keys table; every query filters on the owner."""

from __future__ import annotations

import uuid

from sqlalchemy import case, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.paging import PageParams, fetch_page
from user_service.models import ExchangeKey


class ExchangeKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page_for(self, user_id: uuid.UUID, page: PageParams) -> tuple[list[ExchangeKey], int]:
        """A page of a user's keys by exchange and label, and how many there are."""
        query = (
            select(ExchangeKey)
            .where(ExchangeKey.user_id == user_id)
            .order_by(ExchangeKey.exchange, ExchangeKey.label)
        )
        return await fetch_page(self.session, query, page)

    async def exists(self, user_id: uuid.UUID, exchange: str, label: str) -> bool:
        result = await self.session.execute(
            select(ExchangeKey.id).where(
                ExchangeKey.user_id == user_id,
                ExchangeKey.exchange == exchange,
                ExchangeKey.label == label,
            )
        )
        return result.first() is not None

    async def add(self, key: ExchangeKey) -> ExchangeKey:
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)
        return key

    async def delete(self, user_id: uuid.UUID, key_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(ExchangeKey)
            .where(ExchangeKey.id == key_id, ExchangeKey.user_id == user_id)
            .returning(ExchangeKey.id)
        )
        return result.first() is not None

    async def for_exchange(
        self, user_id: uuid.UUID, exchange: str, label: str | None
    ) -> ExchangeKey | None:
        """The named label, else the `default` one, else the newest."""
        query = select(ExchangeKey).where(
            ExchangeKey.user_id == user_id, ExchangeKey.exchange == exchange
        )
        if label is not None:
            query = query.where(ExchangeKey.label == label)
        query = query.order_by(
            case((ExchangeKey.label == "default", 0), else_=1), ExchangeKey.created_at.desc()
        ).limit(1)
        result = await self.session.execute(query)
        return result.scalar_one_or_none()
