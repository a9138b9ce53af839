"""Settings of the notification service."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field, field_validator

from shared.settings import ServiceSettings, split_urls

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class NotificationSettings(ServiceSettings):
    service_name: str = "notification"

    # Event intake: one consumer group; several members per process share its work.
    consumer_group: str = "notification"
    consumer_concurrency: int = Field(default=2, ge=0, le=32)  # 0: a WS/API-only replica
    event_retry_delay_s: float = Field(default=1.0, ge=0)

    # Preferences come from the user service's internal API, cached briefly.
    preferences_cache_ttl_s: float = Field(default=30.0, ge=0)
    user_service_timeout_s: float = Field(default=1.0, gt=0)

    # Webhooks: timeouts, exponential back-off between attempts, and the SSRF guard.
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_retry_base_s: float = Field(default=2.0, ge=0)
    webhook_retry_max_s: float = Field(default=600.0, ge=0)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_concurrency: int = Field(default=20, ge=1)
    webhook_max_per_user: int = Field(default=10, ge=1)
    # Webhook URLs resolving to loopback, private, link-local or other non-public
    # addresses are refused unless allowed here: all of them, or listed networks (CIDRs,
    # comma-separated, e.g. "127.0.0.1/32,10.0.5.0/24").
    webhook_allow_private: bool = False
    webhook_allowed_networks: str = ""

    # Live push: a socket whose outbound queue fills up is dropped, not waited for.
    ws_queue_size: int = Field(default=1024, ge=1)
    ws_session_check_s: float = Field(default=30.0, gt=0)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        for part in split_urls(value):
            ipaddress.ip_network(part, strict=False)  # raises ValueError on a bad CIDR
        return value

    @property
    def allowed_networks(self) -> list[IPNetwork]:
        return [
            ipaddress.ip_network(part, strict=False)
            for part in split_urls(self.webhook_allowed_networks)
        ]


@lru_cache
def get_settings() -> NotificationSettings:
    return NotificationSettings()
