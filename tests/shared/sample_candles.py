"""Real-looking candles for tests: a geometric random walk with regimes, wicks and volume."""

from __future__ import annotations

import numpy as np

from shared.candles import Candles


def random_candles(
    n: int = 1000,
    *,
    seed: int = 7,
    start_ms: int = 1_700_000_000_000,
    frame_ms: int = 60_000,
    price: float = 30_000.0,
) -> Candles:
    rng = np.random.default_rng(seed)
    vol = 0.004 * np.exp(np.cumsum(rng.normal(0, 0.05, n)).clip(-1.5, 1.5))
    drift = np.repeat(rng.normal(0, 0.0005, n // 50 + 1), 50)[:n]
    close = price * np.exp(np.cumsum(drift + vol * rng.standard_normal(n)))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0, 0.0003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol * 0.6)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol * 0.6)))
    volume = rng.lognormal(3.0, 0.6, n) * (1 + 50 * np.abs(close / np.r_[price, close[:-1]] - 1))
    ts = start_ms + frame_ms * np.arange(n, dtype=np.int64)
    return Candles(ts, open_, high, low, close, volume)


def window(c: Candles, start: int, stop: int) -> Candles:
    """Candles ``start .. stop-1`` as contiguous arrays."""
    s = slice(start, stop)
    return Candles(
        np.ascontiguousarray(c.timestamp[s]),
        np.ascontiguousarray(c.open[s]),
        np.ascontiguousarray(c.high[s]),
        np.ascontiguousarray(c.low[s]),
        np.ascontiguousarray(c.close[s]),
        np.ascontiguousarray(c.volume[s]),
    )
