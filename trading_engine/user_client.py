"""The user service's internal API (contract 1): permissions, limits, decrypted keys."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from shared.breaker import CircuitBreaker, CircuitOpenError
from shared.errors import AppError, DependencyUnavailable, Forbidden, NotFound
from shared.settings import split_urls


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
    def __init__(
        self,
        base_urls: str,
        internal_token: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        account_ttl_s: float = 0.0,
    ) -> None:
        self._account_ttl_s = account_ttl_s
        self._accounts: dict[uuid.UUID, tuple[float, UserAccount]] = {}
        urls = split_urls(base_urls)
        self._client = httpx.AsyncClient(
            base_url=urls[0] if urls else "http://127.0.0.1:5002",
            timeout=timeout_s,
            headers={"X-Internal-Token": internal_token},
            transport=transport,
        )
        self._breaker = CircuitBreaker("trading->user", failure_threshold=5, reset_timeout=10)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str) -> httpx.Response:
        try:
            return await self._breaker.call(
                lambda: self._client.get(path),
                is_failure=lambda exc: isinstance(exc, httpx.TransportError),
            )
        except CircuitOpenError as exc:
            raise DependencyUnavailable(
                "The user service is unavailable.", retry_after=max(1, int(exc.retry_after))
            ) from exc
        except httpx.TransportError as exc:
            raise DependencyUnavailable(f"The user service is unavailable: {exc}") from exc

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
        response = await self._get(f"/user/internal/users/{user_id}")
        if response.status_code == 404:
            raise NotFound("Unknown user.")
        if response.status_code != 200:
            raise DependencyUnavailable(f"The user service answered {response.status_code}.")
        body = response.json()
        return UserAccount(
            id=user_id,
            permissions=frozenset(body.get("permissions") or ()),
            limits=TradingLimits.parse(body.get("trading_limits") or {}),
        )

    async def credentials(self, user_id: uuid.UUID, exchange: str) -> ExchangeCredentials:
        response = await self._get(f"/user/internal/users/{user_id}/exchange-keys/{exchange}")
        if response.status_code == 404:
            raise Forbidden(f"No API key for {exchange} is stored; add one to trade live.")
        if response.status_code != 200:
            raise DependencyUnavailable(f"The user service answered {response.status_code}.")
        body = response.json()
        return ExchangeCredentials(
            exchange=exchange,
            api_key=str(body["api_key"]),
            api_secret=str(body["api_secret"]),
            passphrase=body.get("passphrase"),
        )
