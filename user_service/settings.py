"""Settings of the user service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import ServiceSettings
from user_service.auth.throttle import ThrottlePolicy


class UserSettings(ServiceSettings):
    service_name: str = "user"

    # Fernet key (32 url-safe base64 bytes) for exchange API keys at rest; ENCRYPTION_KEY.
    # Without it the exchange-key routes answer 503; production refuses to start.
    encryption_key: SecretStr | None = None

    password_min_length: int = Field(default=10, ge=8)
    password_max_length: int = Field(default=128, le=1024)

    # Throttle of failed logins (user_service/auth/throttle.py, docs/api.md): free failures
    # of one account from one address, then a doubling wait for that pair; beyond the
    # account's or the address's failure count in the window, addresses the account was
    # never used from get one try per slowdown.
    login_free_failures: int = Field(default=3, ge=1)
    login_backoff_base_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    login_failure_window_seconds: int = Field(default=3600, ge=1)
    login_account_failures_before_slowdown: int = Field(default=10, ge=1)
    login_ip_failures_before_slowdown: int = Field(default=50, ge=1)
    login_slowdown_seconds: float = Field(default=2.0, gt=0)

    @property
    def login_throttle(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            free_failures=self.login_free_failures,
            backoff_base_s=self.login_backoff_base_seconds,
            backoff_max_s=self.login_backoff_max_seconds,
            window_s=self.login_failure_window_seconds,
            account_failures=self.login_account_failures_before_slowdown,
            ip_failures=self.login_ip_failures_before_slowdown,
            slowdown_s=self.login_slowdown_seconds,
        )

    @field_validator("encryption_key", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _refuse_missing_encryption_key(self) -> UserSettings:
        if self.environment == "production" and self.encryption_key is None:
            raise ValueError("ENCRYPTION_KEY must be set in production")
        if self.encryption_key is not None:
            from user_service.key_vault import KeyVault  # validates the key's shape

            KeyVault(self.encryption_key.get_secret_value())
        return self


@lru_cache
def get_settings() -> UserSettings:
    return UserSettings()
