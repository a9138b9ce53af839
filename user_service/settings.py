"""Settings of the user service."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import ServiceSettings


class UserSettings(ServiceSettings):
    service_name: str = "user"

    # Fernet key (32 url-safe base64 bytes) for exchange API keys at rest; ENCRYPTION_KEY.
    # Without it the exchange-key routes answer 503; production refuses to start.
    encryption_key: SecretStr | None = None

    password_min_length: int = Field(default=10, ge=8)
    password_max_length: int = Field(default=128, le=1024)

    # Brute-force throttle of POST /user/auth/login, per account and per client IP.
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=60, ge=1)

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
