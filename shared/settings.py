"""Configuration: one pydantic-settings base shared by every service.

Each service subclasses :class:`ServiceSettings` in its own ``settings.py`` and reads
it through a cached ``get_settings()`` so tests can override it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.forwarding import parse_networks

DEFAULT_JWT_SECRET = "change-me-in-production"  # noqa: S105 - a placeholder, loopback only
# Placeholders that are never a secret (the first two were this project's own defaults).
PLACEHOLDER_SECRETS = frozenset(
    {DEFAULT_JWT_SECRET, "change-me-internal", "change-me", "changeme", "secret", ""}
)
# HS256 wants a key of at least 256 bits (RFC 7518, 3.2).
MIN_JWT_SECRET_LENGTH = 32
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# The services' ports (docs/architecture.md); `tradebot up` and docker-compose use this table.
SERVICE_PORTS: dict[str, int] = {
    "gateway": 5000,
    "market": 5001,
    "user": 5002,
    "trading": 8000,
    "analysis": 8001,
    "notification": 8002,
}


def normalise_database_url(url: str) -> str:
    """Accept the usual ``postgresql://`` spelling and use the asyncpg driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def split_urls(value: str) -> list[str]:
    """A comma-separated list of base URLs, without trailing slashes."""
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


class StrategySettings(BaseSettings):
    """Where the operator's own strategies come from besides entry points (docs/trading.md,
    DataFrame strategies): ``STRATEGIES_DIR``, a folder of Python files, each holding
    strategy classes. Read by every process that runs strategies (the trading engine,
    the analysis service, ``tradebot backtest`` and ``tradebot lookahead``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    strategies_dir: str = ""


class ServiceSettings(BaseSettings):
    """Settings every service shares; read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "tradebot"
    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/tradebot"
    database_pool_size: int = 10
    # How long a request waits for a pooled connection before it is answered 503.
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    redis_url: str = "redis://127.0.0.1:6379/0"
    health_check_timeout: float = Field(default=0.8, gt=0, le=5)

    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_algorithm: str = "HS256"
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 7 * 24 * 3600

    # Service-to-service calls (`/user/internal/*`) carry `X-Internal-Token`; the gateway
    # never forwards `/*/internal/*` paths. No default: unset, the internal routes refuse
    # every call (`tradebot up` generates one for a local run).
    internal_api_token: str = ""

    # The interface the service listens on (`tradebot serve --host` sets BIND_HOST): beyond
    # loopback, placeholder secrets are refused at start.
    bind_host: str = "127.0.0.1"
    # Proxies whose X-Forwarded-For is believed: addresses and CIDR networks, comma
    # separated; none by default (shared.forwarding).
    trusted_proxies: str = ""

    market_service_urls: str = "http://127.0.0.1:5001"
    user_service_urls: str = "http://127.0.0.1:5002"
    trading_service_urls: str = "http://127.0.0.1:8000"
    analysis_service_urls: str = "http://127.0.0.1:8001"
    notification_service_urls: str = "http://127.0.0.1:8002"

    # Event bus (docs/events.md)
    event_stream_maxlen: int = 100_000
    event_claim_idle_ms: int = 15_000
    event_max_failures: int = 5

    # Freeze long-lived objects out of the cyclic GC's view and collect the young
    # generation less often (shared.heap; every service once started, and the bot
    # runner, where full collections stalled requests, ticks and order bursts).
    gc_tuning: bool = True

    @property
    def tunes_gc(self) -> bool:
        """GC tuning on, and not inside pytest (whose heap the tests share)."""
        return self.gc_tuning and self.environment != "test"

    # Traces over OTLP/HTTP (shared/tracing.py), by the standard OpenTelemetry variables:
    # on when an endpoint is set (`{endpoint}/v1/traces`, or the traces endpoint as given);
    # OTEL_TRACES_SAMPLER_ARG is the share of new traces kept.
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_sdk_disabled: bool = False
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0, le=1)

    @property
    def otlp_traces_endpoint(self) -> str:
        """Where spans go, or "" (tracing off)."""
        if self.otel_sdk_disabled:
            return ""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        base = self.otel_exporter_otlp_endpoint.rstrip("/")
        return f"{base}/v1/traces" if base else ""

    # Applied event ids are kept this long (duplicates can only come back within hours).
    processed_events_retention_days: float = Field(default=7.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def exposed(self) -> bool:
        """Listening beyond loopback, or in production: real secrets only."""
        return self.environment == "production" or self.bind_host not in LOOPBACK_HOSTS

    @property
    def internal_token_set(self) -> bool:
        """Is there an internal token the internal routes may accept?"""
        return self.internal_api_token.strip() not in PLACEHOLDER_SECRETS

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if not self.exposed:
            return self
        where = "in production" if self.environment == "production" else f"on {self.bind_host}"
        if (
            self.jwt_secret.strip() in PLACEHOLDER_SECRETS
            or len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH
        ):
            raise ValueError(
                f"JWT_SECRET must be set to a real secret of at least {MIN_JWT_SECRET_LENGTH} "
                f"characters to listen {where}"
            )
        if not self.internal_token_set:
            raise ValueError(f"INTERNAL_API_TOKEN must be set to a real secret to listen {where}")
        return self
