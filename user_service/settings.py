"""Settings of the user service."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import ServiceSettings


class UserSettings(ServiceSettings):
    service_name: str = "user"


@lru_cache
def get_settings() -> UserSettings:
    return UserSettings()
