"""Settings of the api gateway."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
