"""ORM models of the market service (migration section `# --- market service ---`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, Numeric, String, func, true
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

MONEY = Numeric(20, 8)


class TradingPair(Base):
    """A market an exchange lists, kept in step with its markets."""

    __tablename__ = "trading_pairs"

    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    base: Mapped[str] = mapped_column(String(10), primary_key=True)
    exchange: Mapped[str] = mapped_column(String(50), primary_key=True)
    quote: Mapped[str | None] = mapped_column(String(10), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OhlcvCandle(Base):
    """One closed candle of the history (`ohlcv_data`)."""

    __tablename__ = "ohlcv_data"

    exchange: Mapped[str] = mapped_column(String(50), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(10), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    open: Mapped[Decimal] = mapped_column(MONEY)
    high: Mapped[Decimal] = mapped_column(MONEY)
    low: Mapped[Decimal] = mapped_column(MONEY)
    close: Mapped[Decimal] = mapped_column(MONEY)
    volume: Mapped[Decimal] = mapped_column(MONEY)


class OhlcvBlock(Base):
    """A sealed week of history (`ohlcv_blocks`): one Arrow record batch of the candles
    opening in ``[week, week + 7 days)``, read and written by the bulk route."""

    __tablename__ = "ohlcv_blocks"

    exchange: Mapped[str] = mapped_column(String(50), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(10), primary_key=True)
    week: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    candles: Mapped[int] = mapped_column(Integer)
    batch: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
