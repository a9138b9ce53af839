"""Settings of the trading engine."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import ServiceSettings


class TradingSettings(ServiceSettings):
    service_name: str = "trading"


@lru_cache
def get_settings() -> TradingSettings:
    return TradingSettings()
