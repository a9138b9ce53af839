"""SQL for the candle history (`ohlcv_data`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from market_service.exchanges import Candle
from market_service.models import OhlcvCandle

_BATCH = 2000  # rows per INSERT (asyncpg's bind-parameter limit is 32 767)


def _dt(timestamp_ms: float) -> datetime:
    return datetime.fromtimestamp(int(timestamp_ms) / 1000, UTC)


def _dec(value: float) -> Decimal:
    # repr() is the shortest exact decimal of the float: what the exchange sent.
    return Decimal(repr(float(value)))


async def upsert_candles(
    session: AsyncSession, exchange: str, symbol: str, timeframe: str, candles: list[Candle]
) -> int:
    """Insert or update closed candles on their key; returns how many were written."""
    rows = [
        {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "timestamp": _dt(c[0]),
            "open": _dec(c[1]),
            "high": _dec(c[2]),
            "low": _dec(c[3]),
            "close": _dec(c[4]),
            "volume": _dec(c[5]),
        }
        for c in candles
    ]
    for start in range(0, len(rows), _BATCH):
        stmt = insert(OhlcvCandle).values(rows[start : start + _BATCH])
        stmt = stmt.on_conflict_do_update(
            index_elements=["exchange", "symbol", "timeframe", "timestamp"],
            set_={
                "open": stmt.excluded.open,
                "high": stmt.excluded.high,
                "low": stmt.excluded.low,
                "close": stmt.excluded.close,
                "volume": stmt.excluded.volume,
            },
        )
        await session.execute(stmt)
    return len(rows)


async def select_candles(
    session: AsyncSession,
    exchange: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
) -> list[Candle]:
    """Stored candles with ``start_ms <= ts < end_ms``, oldest first."""
    result = await session.execute(
        select(
            OhlcvCandle.timestamp,
            OhlcvCandle.open,
            OhlcvCandle.high,
            OhlcvCandle.low,
            OhlcvCandle.close,
            OhlcvCandle.volume,
        )
        .where(
            OhlcvCandle.exchange == exchange,
            OhlcvCandle.symbol == symbol,
            OhlcvCandle.timeframe == timeframe,
            OhlcvCandle.timestamp >= _dt(start_ms),
            OhlcvCandle.timestamp < _dt(end_ms),
        )
        .order_by(OhlcvCandle.timestamp)
    )
    return [
        [float(int(ts.timestamp() * 1000)), float(o), float(h), float(lo), float(c), float(v)]
        for ts, o, h, lo, c, v in result.all()
    ]
