"""``GET /analysis/signals?symbol=``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analysis_service.deps import AnalysisSettingsDep, CurrentUser, MarketDep, RedisDep
from analysis_service.signals.service import SignalService
from shared.strict_query import StrictQueryRoute
from shared.validation import SINGLE_LINE

router = APIRouter(route_class=StrictQueryRoute, prefix="/analysis", tags=["signals"])


@router.get("/signals")
async def get_signals(
    user: CurrentUser,
    market: MarketDep,
    redis: RedisDep,
    settings: AnalysisSettingsDep,
    symbol: Annotated[str, Query(max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")],
    timeframe: Annotated[str, Query(max_length=5, pattern=SINGLE_LINE)] = "1h",
    exchange: Annotated[str | None, Query(max_length=50, pattern=SINGLE_LINE)] = None,
) -> dict[str, Any]:
    """Each built-in strategy's signal on the latest closed candle, plus key indicators."""
    return await SignalService(market, redis, settings).signals(
        exchange=exchange, symbol=symbol, timeframe=timeframe
    )
