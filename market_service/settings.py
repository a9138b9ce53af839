"""Settings of the market data service."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import ServiceSettings


class MarketSettings(ServiceSettings):
    service_name: str = "market"


@lru_cache
def get_settings() -> MarketSettings:
    return MarketSettings()
