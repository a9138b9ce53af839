"""The user service's internal API (see docs/, internal API): permissions, limits, decrypted
keys, through the shared :class:`~shared.service_client.ServiceClient` (which sends the
internal token)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.errors import AppError, Forbidden, NotFound
from shared.service_client import ServiceClient


@dataclass(frozen=True)
class TradingLimits:
    max_order_value: Decimal | None = None
    max_position_value: Decimal | None = None
    max_open_positions: int | None = None
    daily_loss_limit: Decimal | None = None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TradingLimits:
        def dec(key: str) -> Decimal | None:
            value = raw.get(key)
            return None if value in (None, "") else Decimal(str(value))

        positions = raw.get("max_open_positions")
        return cls(
            max_order_value=dec("max_order_value"),
            max_position_value=dec("max_position_value"),
            max_open_positions=None if positions in (None, "") else int(positions),
            daily_loss_limit=dec("daily_loss_limit"),
        )


@dataclass(frozen=True)
class UserAccount:
    id: uuid.UUID
    permissions: frozenset[str]
    limits: TradingLimits = field(default_factory=TradingLimits)

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class ExchangeCredentials:
    exchange: str
    api_key: str
    api_secret: str
    passphrase: str | None = None


class UserClient:
    def __init__(self, http: ServiceClient, *, account_ttl_s: float = 0.0) -> None:
        self._http = http
        self._account_ttl_s = account_ttl_s
        self._accounts: dict[uuid.UUID, tuple[float, UserAccount]] = {}

    async def account(self, user_id: uuid.UUID) -> UserAccount:
        """Permissions and trading limits; fails closed (503) when the service is down.

        Cached for ``account_ttl_s`` (a limit change applies within that time)."""
        cached = self._accounts.get(user_id)
        if cached is not None and time.monotonic() - cached[0] < self._account_ttl_s:
            return cached[1]
        account = await self._fetch_account(user_id)
        if self._account_ttl_s > 0:
            self._accounts[user_id] = (time.monotonic(), account)
        return account

    async def warm(self, user_ids: set[uuid.UUID]) -> None:
        """Refresh cached accounts past half their lifetime, off the order path."""
        if self._account_ttl_s <= 0:
            return
        now = time.monotonic()
        for user_id in user_ids:
            cached = self._accounts.get(user_id)
            if cached is None or now - cached[0] > self._account_ttl_s / 2:
                try:
                    self._accounts[user_id] = (now, await self._fetch_account(user_id))
                except AppError:
                    continue  # the order path asks again (and fails closed)

    async def _fetch_account(self, user_id: uuid.UUID) -> UserAccount:
        body = await self._http.get(
            f"/user/internal/users/{user_id}", errors={404: lambda _: NotFound("Unknown user.")}
        )
        return UserAccount(
            id=user_id,
            permissions=frozenset(body.get("permissions") or ()),
            limits=TradingLimits.parse(body.get("trading_limits") or {}),
        )

    async def credentials(self, user_id: uuid.UUID, exchange: str) -> ExchangeCredentials:
        body = await self._http.get(
            f"/user/internal/users/{user_id}/exchange-keys/{exchange}",
            # No key stored is the user's to fix, not a missing resource.
            errors={
                404: lambda _: Forbidden(
                    f"No API key for {exchange} is stored; add one to trade live."
                )
            },
        )
        return ExchangeCredentials(
            exchange=exchange,
            api_key=str(body["api_key"]),
            api_secret=str(body["api_secret"]),
            passphrase=body.get("passphrase"),
        )
