"""Where a job's candles come from (a backtest's, an optimisation's): rows sent in the
request body (ccxt rows, checked before any computation) or a range of stored candles."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field, StringConstraints, model_validator

from analysis_service.market import TIMEFRAME_MS, MarketClient
from shared.candles import Candles
from shared.errors import ValidationFailed
from shared.validation import EPOCH_MS_MAX, SINGLE_LINE, UtcDatetime, invalid_input

ShortId = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=SINGLE_LINE)]
CandleRows = Annotated[
    list[list[float]],
    Field(max_length=200_000, description="ccxt rows [ts_ms, o, h, l, c, v], oldest first."),
]


class CandleSource(BaseModel):
    """``candles`` (rows), or ``symbol``, ``timeframe``, ``start``, ``end`` (and
    ``exchange``) to load closed candles from the market service."""

    candles: CandleRows | None = None
    exchange: ShortId | None = None
    symbol: str | None = Field(default=None, max_length=20, pattern=r"^[A-Z0-9]+/[A-Z0-9]+$")
    timeframe: Annotated[str, StringConstraints(max_length=5, pattern=SINGLE_LINE)] | None = None
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CandleSource:
        if self.candles is not None:
            if self.symbol is not None:
                raise ValueError("send either candles or symbol/timeframe/start/end, not both")
            return self
        missing = [
            name for name in ("symbol", "timeframe", "start", "end") if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(
                "send candles, or symbol, timeframe, start and end to load them "
                f"(missing: {', '.join(missing)})"
            )
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        if self.end is not None and self.end > datetime.now(UTC):
            raise ValueError("end lies in the future: a job runs on closed candles only")
        return self


@dataclass(frozen=True)
class SourceSize:
    """How many candles a source holds (about, for a range) and the time they span."""

    count: int
    start_at: datetime | None
    end_at: datetime | None


def check_source(source: CandleSource, *, body_max: int, range_max: int) -> SourceSize:
    """The size of a job's candles, or a 422 (rows are checked in full: CPU work)."""
    if source.candles is not None:
        if len(source.candles) > body_max:
            raise _problem(
                f"at most {body_max} candles in a request body; load longer histories with "
                "symbol, timeframe, start and end"
            )
        candles = candles_from_rows(source.candles)
        if not len(candles):
            return SourceSize(0, None, None)
        return SourceSize(len(candles), _utc(candles.timestamp[0]), _utc(candles.timestamp[-1]))
    if not (source.timeframe and source.start and source.end):  # the schema ensures these
        raise _problem("symbol, timeframe, start and end are required", "symbol")
    frame = TIMEFRAME_MS.get(source.timeframe)
    if frame is None:
        raise _problem(
            f"unknown timeframe {source.timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}",
            "timeframe",
        )
    expected = (to_ms(source.end) - to_ms(source.start)) // frame
    if expected > range_max:
        raise _problem(
            f"the range holds about {expected} candles; at most {range_max} (shorten it or "
            "use a longer timeframe)",
            "start",
        )
    return SourceSize(expected, source.start, source.end)


def _utc(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


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
    request: Mapping[str, Any],
    market: MarketClient,
    *,
    max_candles: int,
    timings: dict[str, float] | None = None,
) -> Candles:
    """The candles of a stored job request (a backtest, an optimisation): the rows it
    carries (checked again, off the loop), or its range from the market service
    (``timings`` gets the stages of the transfer)."""
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
        timings=timings,
    )
