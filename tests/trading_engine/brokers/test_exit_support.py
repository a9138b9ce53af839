"""The per-exchange exit table (docs/trading.md, live bots) agrees with ccxt."""

from __future__ import annotations

import ccxt.async_support as ccxt

from trading_engine.brokers.exit_support import EXIT_SUPPORT, WATCHED, exit_support


async def test_an_exchange_resting_stops_on_the_venue_takes_spot_stop_orders_in_ccxt() -> None:
    for name, support in EXIT_SUPPORT.items():
        client = getattr(ccxt, name)()
        try:
            if support.venue_stop:
                assert client.has.get("createStopLossOrder"), name
        finally:
            await client.close()


def test_an_exchange_not_in_the_table_is_watched() -> None:
    assert exit_support("sim") is WATCHED
    assert exit_support("binance").venue_stop
