"""``POST|GET /analysis/indicators``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError

from analysis_service.deps import AnalysisSettingsDep, CurrentUser, MarketDep, RedisDep
from analysis_service.indicators.schemas import IndicatorsRead, IndicatorsRequest
from analysis_service.indicators.service import IndicatorService
from shared.errors import ValidationFailed
from shared.strict_query import StrictQueryRoute
from shared.validation import SINGLE_LINE, UtcDatetime

router = APIRouter(route_class=StrictQueryRoute, prefix="/analysis", tags=["indicators"])


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
    symbol: Annotated[str, Query(max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")],
    indicators: Annotated[
        str, Query(max_length=500, pattern=SINGLE_LINE, description="e.g. sma:20,rsi:14")
    ],
    timeframe: Annotated[str, Query(max_length=5, pattern=SINGLE_LINE)] = "1h",
    exchange: Annotated[str | None, Query(max_length=50, pattern=SINGLE_LINE)] = None,
    limit: Annotated[int | None, Query(ge=1, le=50_000)] = None,
    start: Annotated[UtcDatetime | None, Query()] = None,
    end: Annotated[UtcDatetime | None, Query()] = None,
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
            {"loc": ["query", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise ValidationFailed(
            "; ".join(e["msg"] for e in errors), extra={"errors": errors}
        ) from None
    return _json(await IndicatorService(market, redis, settings).calculate_json(request))


def _json(body: bytes) -> Response:
    # IndicatorsRead's wire form already (a cache hit: the bytes as cached).
    return Response(body, media_type="application/json")
