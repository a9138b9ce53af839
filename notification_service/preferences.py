"""Which channels a user wants per notification kind, from the user service (docs/, internal
API), through the shared :class:`~shared.service_client.ServiceClient`.

``GET /user/internal/users/{id}`` (with ``X-Internal-Token``) returns the user's
``preferences``; its ``"notifications"`` map names the channels per kind
(``{"trade.executed": ["ws"], ...}``; a kind absent means every channel). Answers are cached
for ``preferences_cache_ttl_s``.

When the user service is down, slow or its breaker is open, the notification is still stored
and sent on **every** channel: a notification the user did not want is better than one lost.
An unknown user (404) gets nothing, since there is no one to notify.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from notification_service.notifications.schemas import CHANNELS
from shared.errors import AppError, NotFound, ServiceUnavailable
from shared.service_client import ServiceClient

log = structlog.get_logger("preferences")

FALLBACK_TTL_S = 2.0  # how long "every channel" stands in for an unreachable user service


class UnknownUser(Exception):
    """The user service does not know this user."""


@dataclass(frozen=True)
class ChannelPreferences:
    """Per-kind channel choices; ``None`` for a kind means all channels."""

    by_kind: Mapping[str, frozenset[str]]

    def channels_for(self, kind: str) -> frozenset[str]:
        return self.by_kind.get(kind, CHANNELS)

    @classmethod
    def from_preferences(cls, preferences: Any) -> ChannelPreferences:
        section = preferences.get("notifications") if isinstance(preferences, dict) else None
        by_kind: dict[str, frozenset[str]] = {}
        if isinstance(section, dict):
            for kind, channels in section.items():
                if isinstance(channels, list):
                    by_kind[str(kind)] = frozenset(str(c) for c in channels) & CHANNELS
        return cls(by_kind)


EVERY_CHANNEL = ChannelPreferences({})


class _Missing(enum.Enum):
    MISSING = "missing"


MISSING = _Missing.MISSING


class PreferenceDirectory:
    """Cached reader of users' notification preferences."""

    def __init__(self, http: ServiceClient, *, ttl_s: float) -> None:
        self._http = http
        self.ttl_s = ttl_s
        self._cache: dict[uuid.UUID, tuple[float, ChannelPreferences | None]] = {}

    async def channels_for(self, user_id: uuid.UUID, kind: str) -> frozenset[str]:
        """The channels to send this kind on; raises UnknownUser for a user who is gone."""
        prefs = await self.lookup(user_id)
        if prefs is None:
            raise UnknownUser(str(user_id))
        return prefs.channels_for(kind)

    def cached(self, user_id: uuid.UUID) -> ChannelPreferences | _Missing | None:
        """The cached answer if still fresh (no await: the hot path skips a task switch)."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return MISSING

    async def lookup(self, user_id: uuid.UUID) -> ChannelPreferences | None:
        fresh = self.cached(user_id)
        if fresh is not MISSING:
            return fresh
        try:
            body = await self._http.get(f"/user/internal/users/{user_id}")
            prefs: ChannelPreferences | None = ChannelPreferences.from_preferences(
                body.get("preferences") or {}
            )
        except NotFound:
            prefs = None
        except AppError as exc:
            # Down, failing or refusing us: every channel (see the module docstring). Known
            # down (breakers open, their gauge says so): no log line per notification.
            if not (isinstance(exc, ServiceUnavailable) and exc.circuit_open):
                log.warning("preferences_unavailable", user_id=str(user_id), error=exc.detail)
            # Remembered briefly so an outage does not cost a call per event.
            now = time.monotonic()
            self._cache[user_id] = (now + min(self.ttl_s, FALLBACK_TTL_S), EVERY_CHANNEL)
            return EVERY_CHANNEL
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[user_id] = (time.monotonic() + self.ttl_s, prefs)
        return prefs
