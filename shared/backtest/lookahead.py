"""The look-ahead check: a strategy's signal on candle t must not change when the
candles after t are removed. Used by the tests of every built-in strategy and by
``tradebot lookahead STRATEGY`` for plugins."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.candles import Candles
from shared.strategies.base import TradingStrategy


@dataclass(frozen=True)
class LookaheadReport:
    strategy: str
    candles: int
    cuts_checked: int
    mismatches: list[tuple[int, int, int]] = field(default_factory=list)
    # (candle index, signal seeing only candles <= t, signal seeing all candles)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def check_lookahead(
    strategy: TradingStrategy, candles: Candles, *, cuts: int = 60, seed: int = 0
) -> LookaheadReport:
    """Compare full-history signals with signals on prefixes ending at ``cuts`` candles.

    Cut points are every candle of the last stretch after the warm-up plus random ones,
    and each prefix is compared in full (not just its last candle), so an indicator that
    peeks even one candle ahead shows up.
    """
    n = len(candles)
    full = strategy.signals(candles)
    start = min(n, max(strategy.warmup, 1))
    rng = np.random.default_rng(seed)
    points = set(range(max(start, n - 10), n))
    if n > start:
        points.update(int(p) for p in rng.integers(start, n, size=max(cuts - len(points), 0)))
    mismatches: list[tuple[int, int, int]] = []
    for end in sorted(points):
        prefix = strategy.signals(candles.head(end))
        differ = np.nonzero(prefix != full[:end])[0]
        for i in differ[:3]:
            mismatches.append((int(i), int(prefix[i]), int(full[i])))
        if len(mismatches) >= 10:
            break
    return LookaheadReport(strategy.name, n, len(points), mismatches)
