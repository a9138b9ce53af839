"""Dependencies of the analysis routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from analysis_service.market import MarketClient
from analysis_service.settings import AnalysisSettings
from shared.deps import CurrentUser, RedisDep, SessionDep

__all__ = ["AnalysisSettingsDep", "CurrentUser", "MarketDep", "RedisDep", "SessionDep"]


async def get_market(request: Request) -> MarketClient:
    market: MarketClient = request.app.state.market
    return market


async def get_analysis_settings(request: Request) -> AnalysisSettings:
    settings: AnalysisSettings = request.app.state.settings
    return settings


MarketDep = Annotated[MarketClient, Depends(get_market)]
AnalysisSettingsDep = Annotated[AnalysisSettings, Depends(get_analysis_settings)]
