"""Walk-forward folds: training and test windows in time order (docs/trading.md).

With ``k`` folds the candles are cut into ``k + 1`` consecutive segments of equal length
(the last one also takes the remainder). Fold ``i`` (0-based) trains on segment ``i`` (or,
anchored, on segments ``0 .. i``) and tests on segment ``i + 1``. A training window always
ends where its test window begins, so no test candle is ever seen while choosing the
parameters; on the test window the strategy's indicators are warmed up on the candles
before it (signals use past candles only), and only the test window is traded and scored.

Without walk-forward there is one window: every candle, and no test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.candles import Candles

# Candles a window needs beyond the strategy's warm-up to mean anything.
MIN_WINDOW = 30


@dataclass(frozen=True)
class Window:
    """Fold ``fold``: train on candles ``[train_start, train_stop)``, test on
    ``[train_stop, test_stop)`` (no test when ``test_stop`` is None)."""

    fold: int
    train_start: int
    train_stop: int
    test_stop: int | None = None

    @property
    def test_start(self) -> int | None:
        return None if self.test_stop is None else self.train_stop

    def train(self, candles: Candles) -> Candles:
        return _slice(candles, self.train_start, self.train_stop)

    def test_with_history(self, candles: Candles) -> tuple[Candles, int]:
        """Candles from the training start to the test end, and where the test begins in
        them (signals are computed on all of it, trades only after that index)."""
        stop = len(candles) if self.test_stop is None else self.test_stop
        return _slice(candles, self.train_start, stop), self.train_stop - self.train_start

    def to_json(self, timestamps: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fold": self.fold,
            "train": _range(timestamps, self.train_start, self.train_stop),
        }
        if self.test_stop is not None:
            out["test"] = _range(timestamps, self.train_stop, self.test_stop)
        return out


def _slice(candles: Candles, start: int, stop: int) -> Candles:
    return Candles(
        candles.timestamp[start:stop],
        candles.open[start:stop],
        candles.high[start:stop],
        candles.low[start:stop],
        candles.close[start:stop],
        candles.volume[start:stop],
    )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _range(timestamps: Any, start: int, stop: int) -> dict[str, Any]:
    return {
        "start": _iso(int(timestamps[start])),
        "end": _iso(int(timestamps[stop - 1])),
        "candles": stop - start,
    }


def windows(n: int, folds: int | None, *, anchored: bool = False) -> list[Window]:
    """The windows over ``n`` candles: one per fold, or a single one without folds."""
    if not folds:
        return [Window(0, 0, n)]
    segment = n // (folds + 1)
    edges = [i * segment for i in range(folds + 1)] + [n]
    return [
        Window(i, 0 if anchored else edges[i], edges[i + 1], edges[i + 2]) for i in range(folds)
    ]


def shortage(n: int, folds: int | None, warmup: int, *, anchored: bool = False) -> str | None:
    """Why ``n`` candles are too few for these windows, or None when they suffice."""
    need_train = warmup + MIN_WINDOW
    if not folds:
        if n < need_train:
            return (
                f"{n} candles are too few: the strategy needs {warmup} candles to warm up at "
                f"the widest point of the space, plus {MIN_WINDOW} to trade on "
                f"({need_train} in all)"
            )
        return None
    found = windows(n, folds, anchored=anchored)
    train = min(w.train_stop - w.train_start for w in found)
    test = min((w.test_stop or 0) - w.train_stop for w in found)
    if train >= need_train and test >= MIN_WINDOW:
        return None
    need = max(need_train, MIN_WINDOW) * (folds + 1)
    return (
        f"{folds} walk-forward folds over {n} candles leave {min(train, test)} candles per "
        f"window; each training window needs at least {need_train} (the widest warm-up of the "
        f"space, {warmup}, plus {MIN_WINDOW}): use fewer folds or at least about {need} candles"
    )
