"""The analysis service: indicators, backtests, signals, performance."""

from __future__ import annotations

from fastapi import FastAPI

from analysis_service.settings import AnalysisSettings, get_settings
from shared.app import create_service_app


def create_app(settings: AnalysisSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        settings,
        title="TradeBot Analysis service",
        description="Indicators, backtests, signals, performance.",
        routers=[],
        use_database=True,
    )
