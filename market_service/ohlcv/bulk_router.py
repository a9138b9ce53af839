"""`GET /market/ohlcv/bulk`: a long range of closed candles as one Arrow IPC stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from market_service.deps import ExchangeDep, MarketSettingsDep, SymbolQuery
from market_service.ohlcv.bulk_service import BulkOhlcv
from shared.candle_arrow import MEDIA_TYPE, stream_end, stream_header
from shared.errors import ValidationFailed
from shared.strict_query import StrictQueryRoute

router = APIRouter(route_class=StrictQueryRoute, prefix="/market", tags=["market"])
log = structlog.get_logger("ohlcv_bulk")

TimeQuery = Annotated[str, Query(max_length=40, description="Epoch ms or ISO-8601 (UTC).")]


def parse_time(name: str, value: str) -> int:
    """Epoch milliseconds, or an ISO-8601 time (UTC when no offset is given)."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        message = f"{name} must be epoch milliseconds or an ISO-8601 time"
        raise ValidationFailed(
            message, extra={"errors": [{"loc": ["query", name], "msg": message}]}
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@router.get(
    "/ohlcv/bulk",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "Arrow IPC stream."}},
)
async def get_ohlcv_bulk(
    request: Request,
    symbol: SymbolQuery,
    exchange: ExchangeDep,
    settings: MarketSettingsDep,
    since: TimeQuery,
    until: Annotated[str | None, Query(max_length=40, description="End (exclusive).")] = None,
    timeframe: Annotated[str, Query(max_length=5)] = "1h",
) -> StreamingResponse:
    """Closed candles opening in ``[since, until)`` (until defaults to now) as an Arrow
    IPC stream of ``timestamp, open, high, low, close, volume``; missing ones are fetched
    from the exchange and stored first."""
    bulk = BulkOhlcv(request.app.state.sessionmaker, exchange, settings)
    plan = await bulk.plan(
        symbol.upper(),
        timeframe,
        parse_time("since", since),
        parse_time("until", until) if until else None,
    )
    windows = bulk.windows(plan)
    # The first window before the status line: an exchange or database failure on it is
    # still a proper 503. A later failure cuts the stream short (no end-of-stream marker).
    try:
        first = await anext(windows, None)
    except BaseException:
        await windows.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield stream_header()
            for batch in first or ():
                yield batch
            async for batches in windows:
                for batch in batches:
                    yield batch
            yield stream_end()
            log.info(
                "ohlcv_bulk_served",
                symbol=plan.symbol,
                timeframe=plan.timeframe,
                candles=plan.candles,
                **{k: round(v, 3) for k, v in bulk.spent.items()},
            )
        except Exception as exc:
            log.warning("ohlcv_bulk_cut_short", symbol=plan.symbol, error=repr(exc))
            raise
        finally:
            await windows.aclose()

    return StreamingResponse(body(), media_type=MEDIA_TYPE)
