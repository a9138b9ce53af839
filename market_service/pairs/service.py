"""Trading pairs: the `trading_pairs` table kept in step with each exchange's markets."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from market_service.exchanges import MarketExchange
from market_service.pairs import repository


def pairs_of(markets: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(symbol, base, quote) of the spot markets that fit the table's columns."""
    out = []
    for symbol, market in markets.items():
        base, quote = market.get("base") or "", market.get("quote") or ""
        if (
            market.get("spot", True)
            and len(symbol) <= 20
            and 0 < len(base) <= 10
            and len(quote) <= 10
        ):
            out.append((symbol, base, quote))
    return out


async def sync_pairs(session: AsyncSession, exchange: MarketExchange) -> int:
    """Load (or refresh) the exchange's markets and mirror them in `trading_pairs`."""
    markets = await exchange.load_markets(reload=True)
    pairs = pairs_of(markets)
    await repository.upsert_pairs(session, exchange.id, pairs)
    return len(pairs)


def market_json(market: dict[str, Any]) -> dict[str, Any]:
    """Precision, limits and fees of one market as ccxt reports them."""
    limits = market.get("limits") or {}
    return {
        "symbol": market["symbol"],
        "base": market.get("base"),
        "quote": market.get("quote"),
        "active": market.get("active") is not False,
        "precision": {
            "amount": (market.get("precision") or {}).get("amount"),
            "price": (market.get("precision") or {}).get("price"),
        },
        "limits": {
            "amount": {
                "min": (limits.get("amount") or {}).get("min"),
                "max": (limits.get("amount") or {}).get("max"),
            },
            "price": {
                "min": (limits.get("price") or {}).get("min"),
                "max": (limits.get("price") or {}).get("max"),
            },
            "cost": {
                "min": (limits.get("cost") or {}).get("min"),
                "max": (limits.get("cost") or {}).get("max"),
            },
        },
        "maker": market.get("maker"),
        "taker": market.get("taker"),
    }
