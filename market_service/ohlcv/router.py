"""`GET /market/ohlcv`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Response

from market_service.deps import (
    ExchangeDep,
    FlightsDep,
    MarketSettingsDep,
    RedisDep,
    SessionDep,
    SymbolQuery,
)
from market_service.ohlcv.cache import OhlcvCache
from market_service.ohlcv.schemas import OhlcvRead
from market_service.ohlcv.service import OhlcvService
from shared.strict_query import StrictQueryRoute
from shared.validation import EPOCH_MS_MAX, EPOCH_MS_MIN, SINGLE_LINE, invalid_input

router = APIRouter(route_class=StrictQueryRoute, prefix="/market", tags=["market"])


def parse_since(value: str | None) -> int | None:
    """Epoch milliseconds, or an ISO-8601 time (UTC when no offset is given), 2000-2099."""
    if value is None or value == "":
        return None
    if value.isascii() and value.isdigit():
        ms = int(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise invalid_input(
                ["query", "since"], "since must be epoch milliseconds or an ISO-8601 time"
            ) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = int(parsed.timestamp() * 1000)
    if not EPOCH_MS_MIN <= ms < EPOCH_MS_MAX:
        raise invalid_input(["query", "since"], "since must lie between 2000-01-01 and 2100-01-01")
    return ms


@router.get("/ohlcv", response_model=OhlcvRead)
async def get_ohlcv(
    symbol: SymbolQuery,
    exchange: ExchangeDep,
    session: SessionDep,
    redis: RedisDep,
    flights: FlightsDep,
    settings: MarketSettingsDep,
    timeframe: Annotated[str, Query(max_length=5, pattern=SINGLE_LINE)] = "1h",
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    since: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=SINGLE_LINE,
            description="Epoch ms or ISO-8601 (first candle), 2000-2099.",
        ),
    ] = None,
) -> Response:
    """Candles oldest first; with ``since`` a range served from the stored history,
    gaps filled from the exchange (paginated past its per-call limit)."""
    service = OhlcvService(session, OhlcvCache(redis), exchange, flights, settings)
    candles = await service.fetch_crypto_ohlcv(
        symbol.upper(), timeframe, limit, since=parse_since(since)
    )
    body = {
        "exchange": exchange.id,
        "symbol": symbol.upper(),
        "timeframe": timeframe,
        # OhlcvRead's CandleRow: the time an integer, the prices floats (stored rows and
        # ccxt's carry float times and int prices).
        "candles": [
            (int(c[0]), float(c[1]), float(c[2]), float(c[3]), float(c[4]), float(c[5]))
            for c in candles
        ],
    }
    # orjson straight from the rows: validating 500 candles against OhlcvRead (3,000 floats)
    # and dumping them again cost four times the rest of the request.
    return Response(orjson.dumps(body), media_type="application/json")
