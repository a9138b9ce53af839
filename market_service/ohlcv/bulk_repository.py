"""SQL of the bulk candle path: sealed weeks in ``ohlcv_blocks``, rows in ``ohlcv_data``.

A sealed week is one row holding one Arrow record batch: a range of them is read with one
``SELECT`` and goes out as stored. Rows (the open week, history the paged route or
``tradebot backfill`` stored) are read with one ``COPY (SELECT ...) TO STDOUT`` and new
ones go in with one ``COPY ... FROM STDIN``; :mod:`market_service.ohlcv.copy_codec` turns
them into numpy columns and back, on a worker thread. The COPY into the table itself is
the fast case; when another writer stored some of the same candles meanwhile (a unique
violation), the batch goes through a temporary table and ``INSERT ... ON CONFLICT`` instead
(``DO NOTHING`` for the bulk path, ``DO UPDATE`` for a backfill).
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from market_service.ohlcv.copy_codec import Columns, decode_rows, encode_rows

_KEY_COLUMNS = ["exchange", "symbol", "timeframe"]
_COLUMNS = [*_KEY_COLUMNS, "timestamp", "open", "high", "low", "close", "volume"]
_COLUMN_LIST = ", ".join(f'"{c}"' for c in _COLUMNS)
_SELECT_WEEKS = (
    "SELECT week FROM ohlcv_blocks WHERE exchange = $1 AND symbol = $2 "
    "AND timeframe = $3 AND week >= $4 AND week < $5"
)
_SELECT_BLOCKS = (
    "SELECT week, candles, batch FROM ohlcv_blocks WHERE exchange = $1 AND symbol = $2 "
    "AND timeframe = $3 AND week >= $4 AND week < $5 ORDER BY week"
)
_INSERT_BLOCK = (
    "INSERT INTO ohlcv_blocks (exchange, symbol, timeframe, week, candles, batch) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
)
_UPSERT = 'ON CONFLICT (exchange, symbol, timeframe, "timestamp") DO UPDATE SET ' + ", ".join(
    f"{c} = excluded.{c}" for c in _COLUMNS[4:]
)
_SELECT_RANGE = (
    'SELECT "timestamp", open, high, low, close, volume FROM ohlcv_data '
    'WHERE exchange = $1 AND symbol = $2 AND timeframe = $3 AND "timestamp" >= $4 '
    'AND "timestamp" < $5 ORDER BY "timestamp"'
)


CandleKey = tuple[str, str, str]  # exchange, symbol, timeframe
Block = tuple[int, int, bytes]  # a sealed week: Monday (epoch ms), candles, record batch


def _dt(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under ``session``, for COPY. Nothing else may run on the
    session: transactions on this connection are the caller's (``driver.transaction()``)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def read_range(
    driver: Any, key: CandleKey, start_ms: int, end_ms: int, *, timeout_s: float | None = None
) -> Columns:
    """Stored candles with ``start_ms <= ts < end_ms``, oldest first, as columns."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await driver.copy_from_query(
        _SELECT_RANGE,
        *key,
        _dt(start_ms),
        _dt(end_ms),
        output=collect,
        format="binary",
        timeout=timeout_s,
    )
    return await asyncio.to_thread(decode_rows, b"".join(chunks))


async def sealed_weeks(driver: Any, key: CandleKey, start_ms: int, end_ms: int) -> set[int]:
    """The sealed weeks starting in ``[start_ms, end_ms)`` (Mondays, epoch ms)."""
    rows = await driver.fetch(_SELECT_WEEKS, *key, _dt(start_ms), _dt(end_ms))
    return {_ms(row["week"]) for row in rows}


async def read_blocks(
    driver: Any, key: CandleKey, start_ms: int, end_ms: int, *, timeout_s: float | None = None
) -> list[Block]:
    """The sealed weeks starting in ``[start_ms, end_ms)``, oldest first."""
    rows = await driver.fetch(_SELECT_BLOCKS, *key, _dt(start_ms), _dt(end_ms), timeout=timeout_s)
    return [(_ms(row["week"]), int(row["candles"]), bytes(row["batch"])) for row in rows]


async def seal(
    driver: Any, key: CandleKey, blocks: list[Block], *, timeout_s: float | None = None
) -> None:
    """Store sealed weeks; a week another writer sealed meanwhile is left as it is (the
    same candles)."""
    if blocks:
        rows = [(*key, _dt(week), n, batch) for week, n, batch in blocks]
        await driver.executemany(_INSERT_BLOCK, rows, timeout=timeout_s)


async def insert_new(
    driver: Any,
    key: CandleKey,
    columns: Columns,
    *,
    update_existing: bool = False,
    timeout_s: float | None = None,
) -> None:
    """Store candles as rows; a candle already stored is left as it is, or with
    ``update_existing`` takes the new values. Call it inside ``driver.transaction()``."""
    if len(columns[0]) == 0:
        return
    data = await asyncio.to_thread(encode_rows, key, columns)
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
        f"FROM ohlcv_incoming {_UPSERT if update_existing else 'ON CONFLICT DO NOTHING'}",
        timeout=timeout_s,
    )
    await driver.execute("TRUNCATE ohlcv_incoming")
