"""Settings of the trading engine."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from pydantic import Field

from shared.settings import ServiceSettings


class TradingSettings(ServiceSettings):
    service_name: str = "trading"

    # Every user's paper wallet starts (and resets) with this much of the quote asset.
    paper_wallet_asset: str = "USDT"
    paper_wallet_amount: Decimal = Decimal("10000")
    # Fee rates for paper fills; unset means the market's own maker/taker schedule.
    paper_taker_fee: Decimal | None = None
    paper_maker_fee: Decimal | None = None
    order_book_depth: int = Field(default=50, ge=1, le=1000)
    # One order-book snapshot serves a burst of orders (bots acting on the same closed
    # candle) for this long; 0 fetches a fresh book for every order.
    order_book_ttl_s: float = Field(default=0.25, ge=0)
    # A user's permissions and trading limits are cached this long (0: ask every time).
    account_cache_ttl_s: float = Field(default=5.0, ge=0)

    # Bots: the lease that makes one replica own a running bot, and how often the runner
    # reconciles its bots with the database (starts, stops, takeovers, missed candles).
    run_bots: bool = True
    bot_lease_ms: int = Field(default=15_000, ge=1000)
    bot_sync_interval_s: float = Field(default=2.0, gt=0)
    bot_history_limit: int = Field(default=500, ge=10, le=5000)
    # Candles a bot missed (no replica ran it: a crash, a takeover) are all replayed in
    # order, at most this many; older ones are skipped and shown on the bot.
    bot_replay_limit: int = Field(default=1000, ge=1, le=4000)
    # Bots processing a candle at the same time (each holds a database connection).
    bot_concurrency: int = Field(default=4, ge=1)
    # Bots of one market that act on the same candle are booked this many per transaction.
    bot_batch_size: int = Field(default=100, ge=1)
    # Closed candles are fanned out to every replica on this pub/sub channel. Redis
    # pub/sub ignores the database index: deployments (or test runs) sharing one Redis
    # server need channels of their own.
    candle_channel: str = "channel:trading:candles"

    # Live trading: ccxt with the user's keys. The URL override points an exchange's REST
    # API elsewhere (a testnet, or the local stub the tests run): {"binance": "http://..."}.
    live_exchange_urls: dict[str, str] = Field(default_factory=dict)
    live_poll_interval_s: float = Field(default=1.0, gt=0)
    live_poll_timeout_s: float = Field(default=60.0, gt=0)
    live_reconcile_interval_s: float = Field(default=15.0, gt=0)
    http_timeout_s: float = Field(default=5.0, gt=0)


@lru_cache
def get_settings() -> TradingSettings:
    return TradingSettings()
