"""The rolling volume profile, compiled (numba, cached on disk).

Imported lazily by :func:`shared.indicators.volume_profile_series` so that code which
never asks for a volume profile does not pay numba's import. The arithmetic is the same,
operation for operation, as :func:`shared.indicators.volume_profile` (a test holds them
equal bit for bit).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _edge(i: int, bins: int, step: float, bottom: float, top: float) -> float:
    """Bin edge ``i`` exactly as ``np.linspace(bottom, top, bins + 1)[i]`` computes it."""
    return top if i == bins else i * step + bottom


@njit(cache=True, nogil=True)
def rolling_volume_profile(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    window: int,
    bins: int,
    value_area: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = high.shape[0]
    poc = np.full(n, np.nan)
    val = np.full(n, np.nan)
    vah = np.full(n, np.nan)
    volumes = np.zeros(bins)
    for t in range(window - 1, n):
        start = t - window + 1
        bottom = low[start]
        top = high[start]
        for i in range(start, t + 1):
            bottom = min(bottom, low[i])
            top = max(top, high[i])
        if top <= bottom:
            top = bottom + max(abs(bottom) * 1e-9, 1e-12)
        span = top - bottom
        step = span / bins
        volumes[:] = 0.0
        for i in range(start, t + 1):
            typical = (high[i] + low[i] + close[i]) / 3.0
            b = int((typical - bottom) / span * bins)
            b = min(max(b, 0), bins - 1)
            volumes[b] += volume[i]
        best = 0
        for b in range(1, bins):
            if volumes[b] > volumes[best]:
                best = b
        total = 0.0
        for b in range(bins):
            total += volumes[b]
        low_bin = best
        high_bin = best
        inside = volumes[best]
        while inside < value_area * total and (low_bin > 0 or high_bin < bins - 1):
            below = volumes[low_bin - 1] if low_bin > 0 else -1.0
            above = volumes[high_bin + 1] if high_bin < bins - 1 else -1.0
            if below >= above:
                low_bin -= 1
                inside += below
            else:
                high_bin += 1
                inside += above
        poc[t] = (
            _edge(best, bins, step, bottom, top) + _edge(best + 1, bins, step, bottom, top)
        ) / 2.0
        val[t] = _edge(low_bin, bins, step, bottom, top)
        vah[t] = _edge(high_bin + 1, bins, step, bottom, top)
    return poc, val, vah
