"""Settings of the analysis service."""

from __future__ import annotations

from functools import lru_cache

from shared.settings import ServiceSettings


class AnalysisSettings(ServiceSettings):
    service_name: str = "analysis"


@lru_cache
def get_settings() -> AnalysisSettings:
    return AnalysisSettings()
