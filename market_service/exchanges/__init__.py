"""Exchange adapters: one per venue (ccxt) plus the offline sim, behind one interface."""

from market_service.exchanges.base import (
    TIMEFRAME_MS,
    Candle,
    MarketExchange,
    OrderBook,
    Ticker,
    Trade,
)
from market_service.exchanges.errors import BadSymbol, BadTimeframe, UnknownExchange
from market_service.exchanges.registry import ExchangeRegistry, build_exchange, build_registry
from shared.exchange_errors import ExchangeError, ExchangeUnavailable

__all__ = [
    "TIMEFRAME_MS",
    "BadSymbol",
    "BadTimeframe",
    "Candle",
    "ExchangeError",
    "ExchangeRegistry",
    "ExchangeUnavailable",
    "MarketExchange",
    "OrderBook",
    "Ticker",
    "Trade",
    "UnknownExchange",
    "build_exchange",
    "build_registry",
]
