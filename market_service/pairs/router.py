"""`GET /market/exchanges`, `/market/pairs`, `/market/markets`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from market_service.deps import ExchangeDep, RegistryDep, SessionDep
from market_service.exchanges import TIMEFRAME_MS
from market_service.exchanges.base import iso_ms
from market_service.pairs import repository
from market_service.pairs.schemas import ExchangesRead, MarketsRead, PairsRead, TradingPairRead
from market_service.pairs.service import market_json
from shared.strict_query import StrictQueryRoute
from shared.validation import SINGLE_LINE

router = APIRouter(route_class=StrictQueryRoute, prefix="/market", tags=["market"])


@router.get("/exchanges", response_model=ExchangesRead)
async def list_exchanges(registry: RegistryDep) -> dict[str, Any]:
    """The configured exchanges, the default first, with their state and timeframes."""
    return {
        "exchanges": [
            {
                "id": ex.id,
                "default": ex.id == registry.default_id,
                "status": "up" if ex.is_available() else "down",
                "timeframes": [t for t in ex.timeframes if t in TIMEFRAME_MS],
                "clock": _clock(ex.clock_rate()),
            }
            for ex in registry
        ]
    }


def _clock(rate: tuple[float, int] | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    speed, anchor_ms = rate
    return {"speed": speed, "anchor": iso_ms(anchor_ms)}


@router.get("/pairs", response_model=PairsRead)
async def list_trading_pairs(
    session: SessionDep,
    registry: RegistryDep,
    exchange: Annotated[str | None, Query(max_length=50, pattern=SINGLE_LINE)] = None,
    include_inactive: bool = False,
) -> dict[str, Any]:
    """Trading pairs from `trading_pairs` (kept in step with the exchanges' markets)."""
    if exchange:
        registry.get(exchange)  # 404 for an exchange that is not configured
    rows = await repository.list_pairs(
        session, exchange=exchange.lower() if exchange else None, active_only=not include_inactive
    )
    return {"pairs": [TradingPairRead.model_validate(r, from_attributes=True) for r in rows]}


@router.get("/markets", response_model=MarketsRead)
async def list_markets(exchange: ExchangeDep) -> dict[str, Any]:
    """Per symbol: precision, limits (min amount, min cost) and maker/taker fees."""
    markets = await exchange.load_markets()
    return {
        "exchange": exchange.id,
        "markets": {symbol: market_json(m) for symbol, m in sorted(markets.items())},
    }
