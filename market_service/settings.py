"""Settings of the market data service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator

from shared.settings import ServiceSettings

SUPPORTED_EXCHANGES = ("sim", "binance", "gate", "mexc")


class MarketSettings(ServiceSettings):
    """Market service configuration (environment variables in upper case)."""

    service_name: str = "market"

    # `sim` | `binance,gate,mexc` (ccxt ids); the first one is the default of every route.
    market_exchanges: str = "sim"

    # The sim exchange's clock: 1.0 = wall-clock time, so sim candles line up with real
    # dates and a backtest over "last month" sees the same candles a bot saw live;
    # 60 = one simulated minute per real second (demos). The clock runs from an anchor
    # shared through Redis, so every replica shows the same sim time.
    sim_speed: float = Field(default=1.0, gt=0, le=3600)
    sim_seed: int = 42
    # Real seconds between two ticks of the sim feed (10 ticks/s by default).
    sim_tick_interval: float = Field(default=0.1, gt=0, le=60)

    # Cache lifetimes (keys in docs/events.md).
    ticker_ttl_seconds: float = Field(default=2.0, gt=0)
    orderbook_ttl_seconds: float = Field(default=1.0, gt=0)
    ohlcv_ttl_seconds: float = Field(default=10.0, gt=0)
    ohlcv_cache_length: int = Field(default=1000, ge=10)
    # Bulk history (GET /market/ohlcv/bulk): candles per read/fill window (one COPY each),
    # windows worked on at once (one connection each), most candles a request may span,
    # and how long one COPY may take.
    ohlcv_bulk_window: int = Field(default=250_000, ge=1000)
    ohlcv_bulk_parallel: int = Field(default=2, ge=1, le=8)
    ohlcv_bulk_max_candles: int = Field(default=2_000_000, ge=1000)
    ohlcv_copy_timeout_s: float = Field(default=300.0, gt=0)

    # ccxt exchanges: per-call timeout, retries (3 attempts, 4-10 s; docs/operations.md), breaker.
    exchange_timeout_ms: int = Field(default=10_000, ge=50)
    exchange_retry_attempts: int = Field(default=3, ge=1, le=10)
    exchange_retry_wait_min: float = Field(default=4.0, ge=0)
    exchange_retry_wait_max: float = Field(default=10.0, ge=0)
    exchange_breaker_threshold: int = Field(default=5, ge=1)
    exchange_breaker_reset_seconds: float = Field(default=30.0, gt=0)
    # ccxt's own client-side throttle (keep it on against real exchanges).
    exchange_rate_limit: bool = True
    markets_refresh_seconds: float = Field(default=3600.0, gt=0)
    # Per-exchange REST base-URL override (JSON object, e.g. {"binance": "http://127.0.0.1:9000"}):
    # every `urls['api']` entry keeps its path and gets this scheme and host. Tests point the
    # real ccxt classes at a local stub this way.
    exchange_base_urls: dict[str, str] = Field(default_factory=dict)
    # Live feed of ccxt exchanges: their WebSocket streams (ccxt.pro watch_ticker) when they
    # offer one, REST polling otherwise or after a stream fails.
    feed_use_exchange_streams: bool = True
    # Polling interval of the live feed for exchanges watched over REST.
    feed_poll_interval: float = Field(default=1.0, gt=0)

    # WebSocket feed.
    # A client with more than this many bytes of frames not yet taken by the kernel has
    # stopped reading and is dropped (~300 ticks; the kernel buffers come before it).
    ws_client_max_unsent: int = Field(default=64 * 1024, ge=1024)
    ws_heartbeat_seconds: float = Field(default=15.0, gt=0)
    ws_max_symbols: int = Field(default=50, ge=1)
    feed_lease_ms: int = Field(default=3000, ge=500)
    candle_registry_interval: float = Field(default=2.0, gt=0)

    @field_validator("market_exchanges")
    @classmethod
    def _known_exchanges(cls, value: str) -> str:
        names = [part.strip().lower() for part in value.split(",") if part.strip()]
        unknown = [n for n in names if n not in SUPPORTED_EXCHANGES]
        if not names or unknown:
            raise ValueError(
                f"MARKET_EXCHANGES must list some of {', '.join(SUPPORTED_EXCHANGES)}; "
                f"unknown: {', '.join(unknown) or '(empty)'}"
            )
        return ",".join(dict.fromkeys(names))

    @property
    def exchange_ids(self) -> list[str]:
        return self.market_exchanges.split(",")


@lru_cache
def get_settings() -> MarketSettings:
    return MarketSettings()
