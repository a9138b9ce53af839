"""Order, trade and position shapes of docs/api.md (money as JSON strings)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from shared.validation import ExchangeId, Price, Quantity

__all__ = ["ExchangeId", "Money", "OrderStatus", "Symbol"]

# Decimals go out as fixed-point strings ("0.01000000"), never floats or exponents.
Money = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str)]
# Stored symbols are upper case: a filter or an order names them so.
Symbol = Annotated[str, Field(min_length=3, max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")]
OrderStatus = Literal["open", "partially_filled", "filled", "canceled", "rejected"]


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exchange: ExchangeId = "sim"
    symbol: Symbol
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"] = "market"
    quantity: Quantity
    price: Price | None = None
    mode: Literal["paper", "live"] = "paper"
    client_order_id: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$"
    )

    @model_validator(mode="after")
    def _price_matches_type(self) -> OrderCreate:
        if self.type == "limit" and self.price is None:
            raise ValueError("a limit order needs a price")
        if self.type == "market" and self.price is not None:
            raise ValueError("a market order takes no price")
        return self


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    client_order_id: str
    exchange_order_id: str | None
    bot_id: uuid.UUID | None
    exchange: str
    symbol: str
    side: str
    type: str
    mode: str
    quantity: Money
    price: Money | None
    status: str
    filled_quantity: Money
    average_price: Money | None
    fee: Money
    fee_currency: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


class TradeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    order_id: uuid.UUID | None
    bot_id: uuid.UUID | None
    exchange: str
    symbol: str
    side: str
    price: Money
    quantity: Money
    fee: Money
    fee_currency: str | None
    pnl: Money | None
    mode: str
    strategy_name: str | None
    liquidity: str | None
    timestamp: datetime


class PositionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    bot_id: uuid.UUID | None
    exchange: str
    symbol: str
    mode: str
    status: str
    quantity: Money
    average_entry_price: Money
    cost_basis: Money
    realized_pnl: Money
    fees: Money
    highest_price: Money | None
    opened_at: datetime
    closed_at: datetime | None
    mark_price: Money | None = None
    unrealized_pnl: Money | None = None
