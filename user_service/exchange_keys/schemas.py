"""Bodies of /user/me/exchange-keys (secrets go in, only the last 4 characters come out)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from shared.validation import SINGLE_LINE, Label

EXCHANGE_ID = r"^[a-z][a-z0-9_]{1,49}$"  # ccxt ids: binance, gate, mexc, ...


def _credential(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=SINGLE_LINE)


class ExchangeKeyCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    exchange: str = Field(pattern=EXCHANGE_ID)
    label: Label = "default"
    api_key: Annotated[str, _credential(4, 512)]
    api_secret: Annotated[str, _credential(4, 1024)]
    passphrase: Annotated[str, _credential(0, 512)] | None = None


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
