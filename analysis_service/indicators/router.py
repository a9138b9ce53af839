"""``POST|GET /analysis/indicators``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from analysis_service.deps import AnalysisSettingsDep, CurrentUser, MarketDep, RedisDep
from analysis_service.indicators.schemas import IndicatorsRead, IndicatorsRequest
from analysis_service.indicators.service import IndicatorService
from shared.errors import ValidationFailed

router = APIRouter(prefix="/analysis", tags=["indicators"])


@router.post("/indicators", response_model=IndicatorsRead)
async def calculate_indicators(
    body: IndicatorsRequest,
    user: CurrentUser,
    market: MarketDep,
    redis: RedisDep,
    settings: AnalysisSettingsDep,
) -> Response:
    """Indicator series aligned to the candles (``null`` in the warm-up)."""
    return _json(await IndicatorService(market, redis, settings).calculate_json(body))


@router.get("/indicators", response_model=IndicatorsRead)
async def get_indicators(
    user: CurrentUser,
    market: MarketDep,
    redis: RedisDep,
    settings: AnalysisSettingsDep,
    symbol: Annotated[str, Query(max_length=20)],
    indicators: Annotated[str, Query(max_length=500, description="e.g. sma:20,rsi:14")],
    timeframe: Annotated[str, Query(max_length=5)] = "1h",
    exchange: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int | None, Query(ge=1, le=50_000)] = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Response:
    """The same, for stored candles named in the query string."""
    try:
        request = IndicatorsRequest(
            symbol=symbol,
            timeframe=timeframe,
            exchange=exchange,
            limit=limit,
            start=start,
            end=end,
            indicators=[part for part in indicators.split(",") if part.strip()],
        )
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {"loc": ["query", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()
        ]
        raise ValidationFailed(
            "; ".join(e["msg"] for e in errors), extra={"errors": errors}
        ) from None
    return _json(await IndicatorService(market, redis, settings).calculate_json(request))


def _json(body: bytes) -> Response:
    # IndicatorsRead's wire form already (a cache hit: the bytes as cached).
    return Response(body, media_type="application/json")
