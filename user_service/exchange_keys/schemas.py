"""Bodies of /user/me/exchange-keys (secrets go in, only the last 4 characters come out)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

EXCHANGE_ID = r"^[a-z][a-z0-9_]{1,49}$"  # ccxt ids: binance, gate, mexc, ...


class ExchangeKeyCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    exchange: str = Field(pattern=EXCHANGE_ID)
    label: str = Field(default="default", min_length=1, max_length=100)
    api_key: str = Field(min_length=4, max_length=512)
    api_secret: str = Field(min_length=4, max_length=1024)
    passphrase: str | None = Field(default=None, max_length=512)


class ExchangeKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    exchange: str
    label: str
    api_key_last4: str
    passphrase_encrypted: str | None = Field(default=None, exclude=True)
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def api_key_masked(self) -> str:
        return "****" + self.api_key_last4

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_passphrase(self) -> bool:
        return self.passphrase_encrypted is not None


class ExchangeKeySecret(BaseModel):
    """Decrypted credentials, for the internal API only."""

    exchange: str
    label: str
    api_key: str
    api_secret: str
    passphrase: str | None
