"""How a live bot's protective exits reach each exchange (docs/trading.md, live exits):
data, in the style of freqtrade's per-exchange ``_ft_has`` table.

``venue_stop``: the exchange takes a resting stop-market sell on spot through ccxt's
unified ``create_order(..., params={"stopLossPrice": level})`` (ccxt's
``has["createStopLossOrder"]``). The bot then keeps one stop order resting at the stop
level (stop loss, raised to the trailing level) and moves it as the peak rises; the take
profit is watched. Exchanges not listed, or listed without it, are watched: the engine
applies the exit rule to each closed candle and sends a market sell.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExitSupport:
    venue_stop: bool
    note: str


WATCHED = ExitSupport(False, "watched: the exit rule on each closed candle, then a market sell")

# Trigger orders on bybit, gate, kucoin and okx are read and canceled through separate
# endpoints (ccxt params ``trigger`` / ``stop``), which the live broker does not send.
TRIGGER_API = "ccxt takes a spot stop, but as a trigger order read apart: watched"

EXIT_SUPPORT: dict[str, ExitSupport] = {
    "binance": ExitSupport(True, "spot STOP_LOSS order (stopPrice); tested against a local stub"),
    "bybit": ExitSupport(False, TRIGGER_API),
    "gate": ExitSupport(False, TRIGGER_API),
    "kucoin": ExitSupport(False, TRIGGER_API),
    "okx": ExitSupport(False, TRIGGER_API),
    "coinbase": ExitSupport(False, "stop-limit orders only: watched"),
    "kraken": ExitSupport(False, "stop orders without ccxt's unified stopLossPrice: watched"),
    "bitstamp": ExitSupport(False, "no stop orders: watched"),
}


def exit_support(exchange: str) -> ExitSupport:
    return EXIT_SUPPORT.get(exchange, WATCHED)
