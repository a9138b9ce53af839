"""Configuration: one pydantic-settings base shared by every service.

Each service subclasses :class:`ServiceSettings` in its own ``settings.py`` and reads
it through a cached ``get_settings()`` so tests can override it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "change-me-in-production"  # noqa: S105 - the placeholder production refuses
DEFAULT_INTERNAL_TOKEN = "change-me-internal"  # noqa: S105 - the placeholder production refuses

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


class ServiceSettings(BaseSettings):
    """Settings every service shares; read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = "tradebot"
    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/tradebot"
    database_pool_size: int = 10
    redis_url: str = "redis://127.0.0.1:6379/0"
    health_check_timeout: float = Field(default=0.8, gt=0, le=5)

    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_algorithm: str = "HS256"
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 7 * 24 * 3600

    # Service-to-service calls (`/user/internal/*`) carry `X-Internal-Token`; the gateway
    # never forwards `/*/internal/*` paths.
    internal_api_token: str = DEFAULT_INTERNAL_TOKEN

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

    # Applied event ids are kept this long (duplicates can only come back within hours).
    processed_events_retention_days: float = Field(default=7.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "production" and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError("JWT_SECRET must be set to a real secret in production")
        if self.environment == "production" and self.internal_api_token == DEFAULT_INTERNAL_TOKEN:
            raise ValueError("INTERNAL_API_TOKEN must be set to a real secret in production")
        return self
