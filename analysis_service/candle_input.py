"""Candles sent in a request body (ccxt rows), checked before any computation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from analysis_service.market import MarketClient
from shared.candles import Candles
from shared.errors import ValidationFailed
from shared.validation import EPOCH_MS_MAX, invalid_input


def _problem(message: str, field: str = "candles") -> ValidationFailed:
    return invalid_input(["body", field], message)


def candles_from_rows(rows: Sequence[Sequence[float]]) -> Candles:
    """``[[ts_ms, o, h, l, c, v], ...]`` -> Candles, or a 422 that says what to fix."""
    for i, row in enumerate(rows):
        if len(row) != 6:
            raise _problem(f"candle {i} has {len(row)} values; expected [ts, o, h, l, c, v]")
    array = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    bad = ~np.isfinite(array)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        name = ("timestamp", "open", "high", "low", "close", "volume")[j]
        raise _problem(f"candle {i} has a non-finite {name}; every value must be a number")
    ts = array[:, 0]
    if array.shape[0] > 1:
        unsorted = np.nonzero(ts[1:] <= ts[:-1])[0]
        if unsorted.size:
            i = int(unsorted[0]) + 1
            raise _problem(
                f"candle timestamps must be strictly increasing; candle {i} is not after "
                f"candle {i - 1} (send candles oldest first, without duplicates)"
            )
    if (ts < 0).any() or (ts >= EPOCH_MS_MAX).any() or (ts != np.floor(ts)).any():
        raise _problem("timestamps must be whole epoch milliseconds before 2100")
    if (array[:, 1:5] <= 0).any():
        raise _problem("prices must be positive")
    if (array[:, 5] < 0).any():
        raise _problem("volumes must not be negative")
    low_above = np.nonzero(array[:, 3] > np.minimum(array[:, 1], array[:, 4]))[0]
    high_below = np.nonzero(array[:, 2] < np.maximum(array[:, 1], array[:, 4]))[0]
    if low_above.size or high_below.size:
        i = int(min([*low_above[:1], *high_below[:1]]))
        raise _problem(f"candle {i}: low must be <= open and close, high >= open and close")
    return Candles.from_rows(array)  # type: ignore[arg-type]


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of a time (naive times are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


async def job_candles(
    request: Mapping[str, Any], market: MarketClient, *, max_candles: int
) -> Candles:
    """The candles of a stored job request (a backtest, an optimisation): the rows it
    carries (checked again, off the loop), or its range from the market service."""
    rows = request.get("candles")
    if rows is not None:
        return await asyncio.to_thread(candles_from_rows, rows)
    return await market.fetch_bulk(
        exchange=request.get("exchange"),
        symbol=request["symbol"],
        timeframe=request["timeframe"],
        start_ms=to_ms(datetime.fromisoformat(request["start"])),
        end_ms=to_ms(datetime.fromisoformat(request["end"])),
        max_candles=max_candles,
    )
