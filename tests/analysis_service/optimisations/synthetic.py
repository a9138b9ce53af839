"""A candle series made so that one moving-average pair is clearly best.

Two cycles and a little noise: a slow one (120 candles) that a crossover can trade, and a
fast one (12 candles) that whipsaws every moving average except those whose length is a
multiple of 12, which cancel it exactly. On the grid fast 3..30 step 3, slow 12..72 step
6, SMA(12) over SMA(18) has a Sharpe ratio about a fifth above the runner-up.
"""

from __future__ import annotations

import numpy as np

from shared.candles import Candles

BEST = {"fast": 12, "slow": 18}
SPACE = {"fast": {"low": 3, "high": 30, "step": 3}, "slow": {"low": 12, "high": 72, "step": 6}}


def two_cycles(n: int = 3000, *, seed: int = 5, start_ms: int = 1_700_000_000_000) -> Candles:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    log_price = (
        0.05 * np.sin(2 * np.pi * t / 120)
        + 0.02 * np.sin(2 * np.pi * t / 12)
        + rng.normal(0, 0.001, n)
    )
    close = 100 * np.exp(log_price)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    ts = (start_ms + 3_600_000 * t).astype(np.int64)
    return Candles(ts, open_, high, low, close, np.ones(n))
