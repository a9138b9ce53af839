"""Ticker, order book and trade bodies (market data as JSON numbers)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TickerRead(BaseModel):
    exchange: str
    symbol: str
    price: float
    bid: float | None
    ask: float | None
    volume: float | None
    change: float | None
    timestamp: datetime


class TickersRead(BaseModel):
    exchange: str
    tickers: list[TickerRead]


class OrderBookRead(BaseModel):
    exchange: str
    symbol: str
    bids: list[list[float]]
    asks: list[list[float]]
    timestamp: datetime


class TradeRead(BaseModel):
    id: str
    timestamp: datetime
    side: str
    price: float
    amount: float


class TradesRead(BaseModel):
    exchange: str
    symbol: str
    trades: list[TradeRead]
