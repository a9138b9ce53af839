"""Notification service settings for tests: the fakes' addresses and quick retries."""

from __future__ import annotations

from typing import Any

from notification_service.settings import NotificationSettings
from tests.notification_service.fakes import INTERNAL_TOKEN


def make_settings(user_service_url: str, **overrides: Any) -> NotificationSettings:
    values: dict[str, Any] = {
        "user_service_urls": user_service_url,
        "internal_api_token": INTERNAL_TOKEN,
        "webhook_allowed_networks": "127.0.0.0/8",  # the tests' receivers are local
        "webhook_retry_base_s": 0.05,
        "webhook_poll_interval_s": 0.2,
        "event_retry_delay_s": 0.05,
        "event_claim_idle_ms": 1000,
        "preferences_cache_ttl_s": 0.0,
        "consumer_concurrency": 2,
        **overrides,
    }
    return NotificationSettings(**values)
