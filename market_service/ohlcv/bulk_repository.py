"""SQL of the bulk candle path: ``ohlcv_data`` read and written with binary COPY.

A range is read in one ``COPY (SELECT ...) TO STDOUT`` and new candles go in with one
``COPY ... FROM STDIN``; :mod:`market_service.ohlcv.copy_codec` turns the rows into numpy
columns and back, on a worker thread. The COPY into the table itself is the fast case;
when another writer stored some of the same candles meanwhile (a unique violation), the
batch goes through a temporary table and ``INSERT ... ON CONFLICT DO NOTHING`` instead.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from market_service.ohlcv.copy_codec import Columns, decode_rows, encode_rows

_KEY_COLUMNS = ["exchange", "symbol", "timeframe"]
_COLUMNS = [*_KEY_COLUMNS, "timestamp", "open", "high", "low", "close", "volume"]
_COLUMN_LIST = ", ".join(f'"{c}"' for c in _COLUMNS)
_SELECT_RANGE = (
    'SELECT "timestamp", open, high, low, close, volume FROM ohlcv_data '
    'WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND "timestamp" >= $4 '
    'AND "timestamp" < $5 ORDER BY "timestamp"'
)


def _dt(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under ``session``, for COPY. Nothing else may run on the
    session: transactions on this connection are the caller's (``driver.transaction()``)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def read_range(
    driver: Any,
    exchange: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    timeout_s: float | None = None,
) -> Columns:
    """Stored candles with ``start_ms <= ts < end_ms``, oldest first, as columns."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await driver.copy_from_query(
        _SELECT_RANGE,
        exchange,
        symbol,
        timeframe,
        _dt(start_ms),
        _dt(end_ms),
        output=collect,
        format="binary",
        timeout=timeout_s,
    )
    return await asyncio.to_thread(decode_rows, b"".join(chunks))


async def insert_new(
    driver: Any,
    exchange: str,
    symbol: str,
    timeframe: str,
    columns: Columns,
    *,
    timeout_s: float | None = None,
) -> None:
    """Store candles the table lacks (ones already there are left as they are); call it
    inside ``driver.transaction()``."""
    if len(columns[0]) == 0:
        return
    data = await asyncio.to_thread(encode_rows, (exchange, symbol, timeframe), columns)
    try:
        async with driver.transaction():  # a savepoint: a conflict undoes only this COPY
            await driver.copy_to_table(
                "ohlcv_data",
                source=io.BytesIO(data),
                columns=_COLUMNS,
                format="binary",
                timeout=timeout_s,
            )
        return
    except asyncpg.UniqueViolationError:
        pass
    await driver.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS ohlcv_incoming "
        "(LIKE ohlcv_data INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    await driver.copy_to_table(
        "ohlcv_incoming",
        source=io.BytesIO(data),
        columns=_COLUMNS,
        format="binary",
        timeout=timeout_s,
    )
    await driver.execute(
        f"INSERT INTO ohlcv_data ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "  # noqa: S608 - fixed names
        "FROM ohlcv_incoming ON CONFLICT DO NOTHING",
        timeout=timeout_s,
    )
    await driver.execute("TRUNCATE ohlcv_incoming")
