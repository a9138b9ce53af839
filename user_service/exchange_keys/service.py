"""Exchange API keys: encrypted before they touch the database, decrypted only internally."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import Conflict, NotFound
from shared.paging import PageParams
from user_service.exchange_keys.repository import ExchangeKeyRepository
from user_service.exchange_keys.schemas import ExchangeKeyCreate, ExchangeKeySecret
from user_service.key_vault import KeyVault
from user_service.models import ExchangeKey


class ExchangeKeyService:
    def __init__(self, session: AsyncSession, vault: KeyVault) -> None:
        self.keys = ExchangeKeyRepository(session)
        self.vault = vault

    async def add(self, user_id: uuid.UUID, data: ExchangeKeyCreate) -> ExchangeKey:
        """Store a key pair encrypted; 409 when the (exchange, label) is already used."""
        if await self.keys.exists(user_id, data.exchange, data.label):
            raise Conflict(f"A key labelled {data.label!r} for {data.exchange} already exists.")
        key = ExchangeKey(
            user_id=user_id,
            exchange=data.exchange,
            label=data.label,
            api_key_encrypted=self.vault.encrypt(data.api_key),
            api_secret_encrypted=self.vault.encrypt(data.api_secret),
            passphrase_encrypted=self.vault.encrypt(data.passphrase) if data.passphrase else None,
            api_key_last4=data.api_key[-4:],
        )
        try:
            return await self.keys.add(key)
        except IntegrityError as exc:
            raise Conflict(f"A key labelled {data.label!r} for {data.exchange} exists.") from exc

    async def page(self, user_id: uuid.UUID, page: PageParams) -> tuple[list[ExchangeKey], int]:
        return await self.keys.page_for(user_id, page)

    async def delete(self, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
        if not await self.keys.delete(user_id, key_id):
            raise NotFound("No such exchange key.")

    async def decrypted(
        self, user_id: uuid.UUID, exchange: str, label: str | None = None
    ) -> ExchangeKeySecret:
        key = await self.keys.for_exchange(user_id, exchange, label)
        if key is None:
            raise NotFound(f"No {exchange} key for this user.")
        return ExchangeKeySecret(
            exchange=key.exchange,
            label=key.label,
            api_key=self.vault.decrypt(key.api_key_encrypted),
            api_secret=self.vault.decrypt(key.api_secret_encrypted),
            passphrase=(
                self.vault.decrypt(key.passphrase_encrypted) if key.passphrase_encrypted else None
            ),
        )
