"""Dependencies of the market routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from market_service.exchanges import ExchangeRegistry, MarketExchange
from market_service.settings import MarketSettings
from market_service.singleflight import SingleFlight
from shared.deps import RedisDep, SessionDep
from shared.validation import SINGLE_LINE

__all__ = [
    "ExchangeDep",
    "FlightsDep",
    "MarketSettingsDep",
    "RedisDep",
    "RegistryDep",
    "SessionDep",
    "SymbolQuery",
]

SYMBOL_PATTERN = r"^[A-Za-z0-9]{1,15}/[A-Za-z0-9]{1,10}$"
SymbolQuery = Annotated[
    str, Query(pattern=SYMBOL_PATTERN, description="Unified symbol, e.g. BTC/USDT.")
]


async def get_registry(request: Request) -> ExchangeRegistry:
    registry: ExchangeRegistry = request.app.state.exchanges
    return registry


RegistryDep = Annotated[ExchangeRegistry, Depends(get_registry)]


async def get_exchange(
    registry: RegistryDep,
    exchange: Annotated[
        str | None,
        Query(
            max_length=50,
            pattern=SINGLE_LINE,
            description="ccxt id (default: the first configured).",
        ),
    ] = None,
) -> MarketExchange:
    """The exchange a request names (404 when it is not configured)."""
    return registry.get(exchange)


ExchangeDep = Annotated[MarketExchange, Depends(get_exchange)]


async def get_flights(request: Request) -> SingleFlight:
    flights: SingleFlight = request.app.state.flights
    return flights


FlightsDep = Annotated[SingleFlight, Depends(get_flights)]


async def get_market_settings(request: Request) -> MarketSettings:
    settings: MarketSettings = request.app.state.settings
    return settings


MarketSettingsDep = Annotated[MarketSettings, Depends(get_market_settings)]
