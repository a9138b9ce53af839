"""Candles through binary COPY: what goes in is what PostgreSQL's numeric holds, what
comes out is the float the paged route gives (``float(Decimal)``), and a batch that
overlaps stored rows stores only the new ones."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from market_service.ohlcv.bulk_repository import driver_connection, insert_new, read_range

KEY = ("sim", "ETH/BTC", "1m")
T0 = 1_735_689_600_000


def columns(values: list[list[float]], first: int = 0) -> tuple[np.ndarray, ...]:
    rows = np.asarray(values, dtype=np.float64)
    timestamp = T0 + (first + np.arange(len(values), dtype=np.int64)) * 60_000
    return (timestamp, *(np.ascontiguousarray(rows[:, i]) for i in range(5)))


VALUES = [
    [0.05123, 0.05124, 0.05122, 0.05123, 12.5],
    [60000.01, 60100.99, 59999.5, 60000.0, 0.00001],
    [0.0, 1e-8, 12345678.1234567, 9999.9999, 1234.5],
    [-1.5, -0.00012345, 1.0, 10000.0, 100000000.0],
    [0.1, 0.2, 0.3, 7.77777777, 89999999999.99],
]


async def test_copied_candles_read_back_as_the_numeric_values_they_store(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        driver = await driver_connection(session)
        async with driver.transaction():
            await insert_new(driver, KEY, columns(VALUES))
        stored = await driver.fetch(
            'SELECT open, high, low, close, volume FROM ohlcv_data ORDER BY "timestamp"'
        )
        back = await read_range(driver, KEY, T0, T0 + 10 * 60_000)
    assert [[Decimal(str(v)) for v in row] for row in VALUES] == [list(row) for row in stored]
    assert back[0].tolist() == [T0 + i * 60_000 for i in range(len(VALUES))]
    for i in range(5):
        assert back[i + 1].tolist() == [float(row[i]) for row in stored]


async def test_a_batch_overlapping_stored_rows_adds_only_the_new_ones(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session:
        driver = await driver_connection(session)
        async with driver.transaction():
            await insert_new(driver, KEY, columns(VALUES[:2]))
    changed = [[v + 1 for v in row] for row in VALUES]
    async with sessionmaker() as session:
        driver = await driver_connection(session)
        async with driver.transaction():
            await insert_new(driver, KEY, columns(changed))
        back = await read_range(driver, KEY, T0, T0 + 10 * 60_000)
    assert back[1].tolist() == [VALUES[0][0], VALUES[1][0], *(row[0] for row in changed[2:])]
    async with sessionmaker() as session:
        count = await session.scalar(text("SELECT count(*) FROM ohlcv_data"))
    assert count == len(VALUES)
