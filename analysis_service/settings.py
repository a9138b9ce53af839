"""Settings of the analysis service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator

from shared.settings import ServiceSettings


class AnalysisSettings(ServiceSettings):
    service_name: str = "analysis"

    # Candles from the market service (GET /market/ohlcv), paginated.
    market_timeout_s: float = Field(default=10.0, gt=0)
    market_page_limit: int = Field(default=1000, ge=10, le=5000)
    market_breaker_failures: int = Field(default=5, ge=1)
    market_breaker_reset_s: float = Field(default=10.0, gt=0)
    # A backtest's whole range in one streamed answer (GET /market/ohlcv/bulk): the wait
    # for each part of it, longer than for a page.
    market_bulk_timeout_s: float = Field(default=120.0, gt=0)

    # Indicators
    indicators_max_candles: int = Field(default=50_000, ge=100)
    indicators_default_limit: int = Field(default=500, ge=1)
    indicators_max_specs: int = Field(default=20, ge=1)
    indicators_cache_ttl_s: int = Field(default=30, ge=1)

    # Backtest jobs: a Redis Stream read by a consumer group (any replica runs a job).
    backtest_stream: str = "queue:backtests"
    backtest_group: str = "analysis"
    backtest_max_candles: int = Field(default=1_000_000, ge=1000)
    backtest_body_max_candles: int = Field(default=200_000, ge=1000)
    backtest_claim_idle_ms: int = Field(default=60_000, ge=1000)
    backtest_heartbeat_s: float = Field(default=5.0, gt=0)
    # How often one replica looks for jobs whose stream entry is gone (queued again).
    backtest_recover_interval_s: float = Field(default=30.0, gt=0)
    backtest_max_points: int = Field(default=5000, ge=100)
    backtest_workers: int = Field(default=1, ge=0, le=8)
    # Jobs one user may have queued or running at once (counted in PostgreSQL, so across
    # replicas); one more is a 429 telling them to wait this many seconds.
    backtest_max_jobs_per_user: int = Field(default=3, ge=1)
    backtest_busy_retry_after_s: int = Field(default=30, ge=1)

    # Optimisations (docs/trading.md, optimisation): every replica polls PostgreSQL for
    # runs to join and works on them in `optimisation_workers` child processes (0: this
    # replica only serves the API); the trials of a run are shared through Redis.
    optimisation_workers: int = Field(default=1, ge=0, le=64)
    optimisation_poll_s: float = Field(default=1.0, gt=0)
    optimisation_progress_s: float = Field(default=1.0, gt=0)
    # A worker stamps its running trial every heartbeat; a trial unstamped for the grace
    # period is failed by another worker (its worker died) and its place given to a new one.
    optimisation_heartbeat_s: float = Field(default=1.0, gt=0, le=60)
    optimisation_grace_s: float = Field(default=10.0, gt=0)
    optimisation_max_jobs_per_user: int = Field(default=2, ge=1)
    optimisation_busy_retry_after_s: int = Field(default=60, ge=1)
    # How long a finished run's Redis journal is kept (its result is in PostgreSQL).
    optimisation_journal_ttl_s: int = Field(default=3600, ge=1)

    # Signals
    signals_cache_ttl_s: int = Field(default=30, ge=1)
    signals_candles: int = Field(default=300, ge=50, le=5000)

    @model_validator(mode="after")
    def _grace_beyond_heartbeats(self) -> AnalysisSettings:
        # A grace period within two heartbeats would fail trials whose worker is alive.
        if self.optimisation_grace_s < 2 * self.optimisation_heartbeat_s:
            raise ValueError("OPTIMISATION_GRACE_S must be at least twice OPTIMISATION_HEARTBEAT_S")
        return self


@lru_cache
def get_settings() -> AnalysisSettings:
    return AnalysisSettings()
