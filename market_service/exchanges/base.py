"""What every exchange adapter offers (the ccxt-backed ones and the sim)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.timeframes import TIMEFRAME_MS as TIMEFRAME_MS  # re-exported for this package

# ccxt's OHLCV row: [timestamp ms, open, high, low, close, volume].
Candle = list[float]


def iso_ms(timestamp_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Ticker:
    exchange: str
    symbol: str
    price: float
    bid: float | None
    ask: float | None
    volume: float | None
    change: float | None  # 24 h change in percent
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies, ~10x the cost on the cached path.
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "price": self.price,
            "bid": self.bid,
            "ask": self.ask,
            "volume": self.volume,
            "change": self.change,
            "timestamp": iso_ms(self.timestamp_ms),
        }


@dataclass(frozen=True, slots=True)
class OrderBook:
    exchange: str
    symbol: str
    bids: list[list[float]]  # [price, amount], best (highest) first
    asks: list[list[float]]  # best (lowest) first
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "bids": self.bids,
            "asks": self.asks,
            "timestamp": iso_ms(self.timestamp_ms),
        }


@dataclass(frozen=True, slots=True)
class Trade:
    id: str
    timestamp_ms: int
    side: str
    price: float
    amount: float


class MarketExchange(Protocol):
    """The read side of an exchange the market service needs."""

    id: str
    timeframes: list[str]
    # Most candles one OHLCV call returns; longer ranges are paginated.
    ohlcv_page_limit: int

    def now_ms(self) -> int:
        """The exchange's clock (the sim's may run faster than the wall)."""
        ...

    def clock_rate(self) -> tuple[float, int] | None:
        """``(speed, anchor_ms)`` when the clock is not the wall's: exchange time is
        ``anchor + (wall - anchor) * speed``; None for a real exchange."""
        ...

    def is_available(self) -> bool:
        """False while the exchange's circuit breaker is open."""
        ...

    async def load_markets(self, *, reload: bool = False) -> dict[str, dict[str, Any]]: ...

    async def market(self, symbol: str) -> dict[str, Any]:
        """The market of ``symbol`` (raises BadSymbol)."""
        ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int
    ) -> list[Candle]: ...

    async def fetch_order_book(self, symbol: str, depth: int) -> OrderBook: ...

    async def fetch_trades(self, symbol: str, limit: int) -> list[Trade]: ...

    async def close(self) -> None: ...
