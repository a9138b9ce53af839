"""Higher timeframes for a strategy on a lower one (docs/trading.md, several timeframes).

A higher candle opening at ``T`` covers ``[T, T + frame)`` and closes at ``T + frame``;
buckets are aligned on the Unix epoch in UTC, weeks on Monday, as the market service
and the exchanges align them. A lower candle ``i`` (open ``ts[i]``, frame ``F``) sees the
higher candles that closed by its own close, ``T + frame <= ts[i] + F``: the candle still
forming is never visible, so nothing is looked up ahead.

Higher candles come from one of two places, with the same values (tested against the
market service's own aggregation):

- :func:`attach`: candles of the higher timeframe loaded from the market service (what a
  running bot does: it keeps their history, longer than its window);
- :func:`aggregate`: built from the lower candles themselves (what a backtest does, and
  any strategy handed candles without them): open of the first, highest high, lowest low,
  close of the last, summed volume; a first bucket the candles start inside of is left
  out (its open and range would be wrong).

:func:`higher_candles` gives a strategy the attached ones when present, else aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shared.candles import Candles, HigherCandles, IntArray
from shared.timeframes import TIMEFRAME_MS

__all__ = [
    "TimeframeError",
    "aggregate",
    "attach",
    "bucket_open",
    "check_higher",
    "higher_candles",
    "spacing_ms",
    "visible_counts",
]

WEEK_OFFSET_MS = 4 * 86_400_000  # the epoch was a Thursday; weekly candles open on Monday


class TimeframeError(ValueError):
    """A higher timeframe that is unknown, or not a whole multiple of the lower one."""


def frame_ms(timeframe: str) -> int:
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise TimeframeError(
            f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}"
        ) from None


def check_higher(lower_ms: int, timeframe: str) -> None:
    """Refuse a ``timeframe`` that is not a whole multiple of candles of ``lower_ms``."""
    higher_ms = frame_ms(timeframe)
    if higher_ms < lower_ms or higher_ms % lower_ms:
        raise TimeframeError(
            f"timeframe {timeframe!r} is not a whole multiple of the trading timeframe "
            f"({lower_ms // 60_000} min): a strategy reads its own or higher timeframes only"
        )


def bucket_open(timestamps: IntArray, timeframe: str) -> IntArray:
    """The open time of the ``timeframe`` candle holding each timestamp."""
    step = frame_ms(timeframe)
    offset = WEEK_OFFSET_MS if timeframe == "1w" else 0
    opens: IntArray = (timestamps - offset) // step * step + offset
    return opens


def spacing_ms(timestamps: IntArray) -> int:
    """The lower candles' frame, read off their spacing: the median of the first gaps
    (robust to a few missing candles); one minute when there are fewer than two."""
    if timestamps.shape[0] < 2:
        return 60_000
    gaps = np.diff(timestamps[: min(timestamps.shape[0], 1001)])
    return max(int(np.median(gaps)), 1)


def visible_counts(
    lower_ts: IntArray, lower_ms: int, higher_ts: IntArray, higher_ms: int
) -> IntArray:
    """Per lower candle, how many higher candles had closed by its close."""
    closes = higher_ts + higher_ms
    counts: IntArray = np.searchsorted(closes, lower_ts + lower_ms, side="right").astype(np.int64)
    return counts


def _known(candles: Candles, visible: IntArray) -> Candles:
    """``candles`` without those visible nowhere (still forming at the last close)."""
    known = int(visible[-1]) if visible.shape[0] else 0
    return candles if known == len(candles) else candles.head(known)


def aggregate(candles: Candles, timeframe: str, lower_ms: int | None = None) -> HigherCandles:
    """The ``timeframe`` candles made of ``candles`` (see the module docstring)."""
    lower = lower_ms or spacing_ms(candles.timestamp)
    check_higher(lower, timeframe)
    higher_ms = frame_ms(timeframe)
    ts = candles.timestamp
    if ts.shape[0] == 0:
        empty = Candles.from_rows([])
        return HigherCandles(timeframe, empty, np.zeros(0, dtype=np.int64))
    opens = bucket_open(ts, timeframe)
    starts = np.flatnonzero(np.r_[True, opens[1:] != opens[:-1]])
    if ts[0] != opens[0]:  # the candles start inside their first bucket
        starts = starts[1:]
    if starts.shape[0] == 0:
        empty = Candles.from_rows([])
        return HigherCandles(timeframe, empty, np.zeros(ts.shape[0], dtype=np.int64))
    ends = np.r_[starts[1:], ts.shape[0]] - 1
    built = Candles(
        np.ascontiguousarray(opens[starts]),
        np.ascontiguousarray(candles.open[starts]),
        np.maximum.reduceat(candles.high[starts[0] :], starts - starts[0]),
        np.minimum.reduceat(candles.low[starts[0] :], starts - starts[0]),
        np.ascontiguousarray(candles.close[ends]),
        np.add.reduceat(candles.volume[starts[0] :], starts - starts[0]),
    )
    visible = visible_counts(ts, lower, built.timestamp, higher_ms)
    return HigherCandles(timeframe, _known(built, visible), visible)


def attach(candles: Candles, higher: Mapping[str, Candles], lower_ms: int) -> Candles:
    """``candles`` carrying loaded higher candles (oldest first, the forming one may be
    among them: it is dropped, being visible nowhere)."""
    attached = dict(candles.higher)
    for timeframe, rows in higher.items():
        check_higher(lower_ms, timeframe)
        visible = visible_counts(candles.timestamp, lower_ms, rows.timestamp, frame_ms(timeframe))
        attached[timeframe] = HigherCandles(timeframe, _known(rows, visible), visible)
    return Candles(
        candles.timestamp,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        candles.volume,
        higher=attached,
    )


def higher_candles(candles: Candles, timeframe: str) -> HigherCandles:
    """The ``timeframe`` candles a strategy on ``candles`` sees: the attached ones, else
    aggregated from ``candles``."""
    found = candles.higher.get(timeframe)
    return found if found is not None else aggregate(candles, timeframe)
