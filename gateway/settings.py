"""Settings of the api gateway."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shared.settings import ServiceSettings, split_urls


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"

    # Requests a minute per user (per client IP when anonymous), shared by all replicas.
    rate_limit_per_minute: int = Field(default=100, ge=1)
    rate_limit_enabled: bool = True
    # Comma-separated origins allowed by CORS ("*" for any); empty: no CORS headers.
    cors_origins: str = ""

    # /health lists every upstream ("market": "up"); off, it reports the gateway's Redis only.
    health_include_upstreams: bool = True

    # Circuit breaker per upstream base URL.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_timeout_seconds: float = Field(default=10.0, gt=0)
    # An open breaker's instance is probed on its /health this often; a 200 lets the next
    # request through as the half-open probe without waiting out the reset timeout.
    breaker_probe_interval_seconds: float = Field(default=0.5, gt=0)

    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_pool_size: int = Field(default=256, ge=1)
    # Request bodies up to this size are read whole; larger ones are streamed upstream.
    buffer_request_body_bytes: int = Field(default=64 * 1024, ge=0)

    # The web dashboard's build (index.html and assets/), served at / (gateway/dashboard.py);
    # empty: gateway/web/dist beside the package, where `npm run build` writes it.
    dashboard_dir: str = ""

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def upstream_urls(self) -> dict[str, list[str]]:
        """Service name -> its base URLs (the routing table of docs/api.md)."""
        return {
            "market": split_urls(self.market_service_urls),
            "user": split_urls(self.user_service_urls),
            "trading": split_urls(self.trading_service_urls),
            "analysis": split_urls(self.analysis_service_urls),
            "notification": split_urls(self.notification_service_urls),
        }


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
