"""Technical indicators on numpy arrays: TA-Lib for the classics, numpy for volume profile.

Every function returns float64 arrays aligned to its input, NaN where the indicator is not
yet defined (the warm-up). :func:`parse_spec` reads the compact specs the analysis API
takes (``sma:20``, ``bbands:20:2``, ``macd:12:26:9``) and :func:`compute` evaluates one on
:class:`~shared.candles.Candles`. :class:`TechnicalAnalysis` keeps the method names of the
original design (``calculate_sma``, ``calculate_ema``, ``calculate_rsi``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import talib
from talib._ta_lib import MA_Type

from shared.candles import Candles, FloatArray

__all__ = [
    "INDICATORS",
    "IndicatorSpec",
    "IndicatorSpecError",
    "TechnicalAnalysis",
    "VolumeProfile",
    "atr",
    "bbands",
    "compute",
    "ema",
    "macd",
    "obv",
    "parse_spec",
    "rsi",
    "sma",
    "stoch",
    "volume_profile",
    "volume_profile_series",
]

MAX_PERIOD = 10_000


class IndicatorSpecError(ValueError):
    """A spec that cannot be computed; the message says what to fix."""


def _f64(values: npt.ArrayLike) -> FloatArray:
    return np.ascontiguousarray(values, dtype=np.float64)


# --- trend ------------------------------------------------------------------------------
def sma(close: npt.ArrayLike, period: int = 20) -> FloatArray:
    """Simple moving average of ``period`` values."""
    return _f64(talib.SMA(_f64(close), timeperiod=period))


def ema(close: npt.ArrayLike, period: int = 20) -> FloatArray:
    """Exponential moving average (TA-Lib: seeded with the SMA of the first ``period``)."""
    return _f64(talib.EMA(_f64(close), timeperiod=period))


def macd(
    close: npt.ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MACD line, signal line and histogram."""
    line, sig, hist = talib.MACD(_f64(close), fastperiod=fast, slowperiod=slow, signalperiod=signal)
    return _f64(line), _f64(sig), _f64(hist)


# --- momentum ---------------------------------------------------------------------------
def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's relative strength index, 0..100."""
    return _f64(talib.RSI(_f64(close), timeperiod=period))


def stoch(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    fastk: int = 14,
    slowk: int = 3,
    slowd: int = 3,
) -> tuple[FloatArray, FloatArray]:
    """Slow stochastic %K and %D (SMA smoothing)."""
    k, d = talib.STOCH(
        _f64(high),
        _f64(low),
        _f64(close),
        fastk_period=fastk,
        slowk_period=slowk,
        slowk_matype=MA_Type.SMA,
        slowd_period=slowd,
        slowd_matype=MA_Type.SMA,
    )
    return _f64(k), _f64(d)


# --- volatility -------------------------------------------------------------------------
def bbands(
    close: npt.ArrayLike, period: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger Bands: upper, middle (SMA), lower at ``k`` population standard deviations."""
    upper, middle, lower = talib.BBANDS(
        _f64(close), timeperiod=period, nbdevup=k, nbdevdn=k, matype=MA_Type.SMA
    )
    return _f64(upper), _f64(middle), _f64(lower)


def atr(
    high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike, period: int = 14
) -> FloatArray:
    """Average true range (Wilder smoothing)."""
    return _f64(talib.ATR(_f64(high), _f64(low), _f64(close), timeperiod=period))


# --- volume -----------------------------------------------------------------------------
def obv(close: npt.ArrayLike, volume: npt.ArrayLike) -> FloatArray:
    """On-balance volume."""
    return _f64(talib.OBV(_f64(close), _f64(volume)))


@dataclass(frozen=True)
class VolumeProfile:
    """Volume per price bin over a window, its point of control and value area."""

    bin_edges: FloatArray  # bins + 1 edges, low to high
    volumes: FloatArray  # volume per bin
    poc: float  # centre of the bin with the most volume
    value_area_low: float  # lower edge of the value area
    value_area_high: float  # upper edge of the value area


def volume_profile(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    bins: int = 24,
    value_area: float = 0.70,
) -> VolumeProfile:
    """The volume profile of the given candles.

    The range ``[min(low), max(high)]`` is cut into ``bins`` equal bins; each candle's
    volume goes to the bin holding its typical price ``(high + low + close) / 3``. The
    point of control is the bin with the most volume (the lowest such bin on a tie). The
    value area starts at that bin and repeatedly adds the neighbouring bin with more
    volume (the lower one on a tie) until it holds ``value_area`` of the total volume.
    """
    h, lo, c, v = _f64(high), _f64(low), _f64(close), _f64(volume)
    if h.size == 0:
        raise IndicatorSpecError("volume profile needs at least one candle")
    bottom, top = float(lo.min()), float(h.max())
    if top <= bottom:
        top = bottom + max(abs(bottom) * 1e-9, 1e-12)
    edges = np.linspace(bottom, top, bins + 1)
    typical = (h + lo + c) / 3.0
    index = np.clip(((typical - bottom) / (top - bottom) * bins).astype(np.int64), 0, bins - 1)
    volumes = np.bincount(index, weights=v, minlength=bins).astype(np.float64)
    poc_bin = int(np.argmax(volumes))
    low_bin, high_bin = poc_bin, poc_bin
    total = sum(volumes.tolist())  # left to right, as the compiled rolling version adds
    inside = float(volumes[poc_bin])
    while inside < value_area * total and (low_bin > 0 or high_bin < bins - 1):
        below = volumes[low_bin - 1] if low_bin > 0 else -1.0
        above = volumes[high_bin + 1] if high_bin < bins - 1 else -1.0
        if below >= above:
            low_bin -= 1
            inside += float(below)
        else:
            high_bin += 1
            inside += float(above)
    return VolumeProfile(
        bin_edges=edges,
        volumes=volumes,
        poc=float((edges[poc_bin] + edges[poc_bin + 1]) / 2.0),
        value_area_low=float(edges[low_bin]),
        value_area_high=float(edges[high_bin + 1]),
    )


def volume_profile_series(
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
    window: int = 50,
    bins: int = 24,
    value_area: float = 0.70,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rolling point of control, value-area low and high over the last ``window`` candles."""
    from shared.volume_profile import rolling_volume_profile  # numba: only when asked for

    return rolling_volume_profile(
        _f64(high), _f64(low), _f64(close), _f64(volume), int(window), int(bins),
        float(value_area),
    )  # fmt: skip


# --- specs ------------------------------------------------------------------------------
Series = dict[str, FloatArray]


@dataclass(frozen=True)
class _Indicator:
    defaults: tuple[float, ...]
    integer: tuple[bool, ...]
    lookback: Callable[[tuple[float, ...]], int]
    run: Callable[[Candles, tuple[float, ...]], Series]
    help: str


def _i(value: float) -> int:
    return int(value)


INDICATORS: dict[str, _Indicator] = {
    "sma": _Indicator(
        (20,),
        (True,),
        lambda p: _i(p[0]) - 1,
        lambda c, p: {"value": sma(c.close, _i(p[0]))},
        "sma:PERIOD",
    ),
    "ema": _Indicator(
        (20,),
        (True,),
        lambda p: _i(p[0]) - 1,
        lambda c, p: {"value": ema(c.close, _i(p[0]))},
        "ema:PERIOD",
    ),
    "rsi": _Indicator(
        (14,),
        (True,),
        lambda p: _i(p[0]),
        lambda c, p: {"value": rsi(c.close, _i(p[0]))},
        "rsi:PERIOD",
    ),
    "macd": _Indicator(
        (12, 26, 9),
        (True, True, True),
        lambda p: _i(p[1]) - 1 + _i(p[2]) - 1,
        lambda c, p: dict(
            zip(
                ("macd", "signal", "histogram"),
                macd(c.close, _i(p[0]), _i(p[1]), _i(p[2])),
                strict=True,
            )
        ),
        "macd:FAST:SLOW:SIGNAL",
    ),
    "stoch": _Indicator(
        (14, 3, 3),
        (True, True, True),
        lambda p: _i(p[0]) - 1 + _i(p[1]) - 1 + _i(p[2]) - 1,
        lambda c, p: dict(
            zip(
                ("k", "d"), stoch(c.high, c.low, c.close, _i(p[0]), _i(p[1]), _i(p[2])), strict=True
            )
        ),
        "stoch:FASTK:SLOWK:SLOWD",
    ),
    "bbands": _Indicator(
        (20, 2.0),
        (True, False),
        lambda p: _i(p[0]) - 1,
        lambda c, p: dict(
            zip(("upper", "middle", "lower"), bbands(c.close, _i(p[0]), p[1]), strict=True)
        ),
        "bbands:PERIOD:K",
    ),
    "atr": _Indicator(
        (14,),
        (True,),
        lambda p: _i(p[0]),
        lambda c, p: {"value": atr(c.high, c.low, c.close, _i(p[0]))},
        "atr:PERIOD",
    ),
    "obv": _Indicator(
        (),
        (),
        lambda p: 0,
        lambda c, p: {"value": obv(c.close, c.volume)},
        "obv",
    ),
    "vp": _Indicator(
        (50, 24, 0.7),
        (True, True, False),
        lambda p: _i(p[0]) - 1,
        lambda c, p: dict(
            zip(
                ("poc", "value_area_low", "value_area_high"),
                volume_profile_series(c.high, c.low, c.close, c.volume, _i(p[0]), _i(p[1]), p[2]),
                strict=True,
            )
        ),
        "vp:WINDOW:BINS:VALUE_AREA",
    ),
}
_ALIASES = {"volume_profile": "vp", "bb": "bbands", "stochastic": "stoch"}
_MINIMUM = {"macd": (2, 2, 1), "stoch": (1, 1, 1), "rsi": (2,), "atr": (1,), "vp": (1, 1, 0)}


@dataclass(frozen=True)
class IndicatorSpec:
    """One parsed spec: a name and its parameters (defaults filled in)."""

    text: str
    name: str
    params: tuple[float, ...]

    @property
    def lookback(self) -> int:
        """Leading candles without a value (so ``lookback + 1`` candles give one value)."""
        return INDICATORS[self.name].lookback(self.params)


def parse_spec(text: str) -> IndicatorSpec:
    """``name[:param[:param...]]`` -> :class:`IndicatorSpec`, or a clear error."""
    raw = text.strip().lower()
    name, *parts = raw.split(":")
    name = _ALIASES.get(name, name)
    if name not in INDICATORS:
        raise IndicatorSpecError(
            f"unknown indicator {text!r}; known: {', '.join(sorted(INDICATORS))}"
        )
    ind = INDICATORS[name]
    if len(parts) > len(ind.defaults):
        raise IndicatorSpecError(f"{text!r} has too many parameters; the form is {ind.help}")
    params = list(ind.defaults)
    for i, part in enumerate(parts):
        try:
            value = float(part)
        except ValueError:
            raise IndicatorSpecError(
                f"parameter {i + 1} of {text!r} must be a number; the form is {ind.help}"
            ) from None
        if not np.isfinite(value):
            raise IndicatorSpecError(f"parameter {i + 1} of {text!r} must be finite")
        if ind.integer[i] and value != int(value):
            raise IndicatorSpecError(
                f"parameter {i + 1} of {text!r} must be a whole number; the form is {ind.help}"
            )
        params[i] = value
    minimum = _MINIMUM.get(name, (1,) * len(params))
    for i, value in enumerate(params):
        if ind.integer[i] and not minimum[i] <= value <= MAX_PERIOD:
            raise IndicatorSpecError(
                f"parameter {i + 1} of {text!r} must be between {minimum[i]} and {MAX_PERIOD}"
            )
    if name == "macd" and params[0] >= params[1]:
        raise IndicatorSpecError(f"{text!r}: the fast period must be below the slow period")
    if name == "bbands" and not 0 < params[1] <= 10:
        raise IndicatorSpecError(f"{text!r}: K must be above 0 and at most 10")
    if name == "vp" and not 0 < params[2] <= 1:
        raise IndicatorSpecError(f"{text!r}: the value area must be a fraction in (0, 1]")
    normal = ":".join([name, *(_fmt(p) for p in params)])
    return IndicatorSpec(text=normal, name=name, params=tuple(params))


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def compute(spec: IndicatorSpec, candles: Candles) -> Series:
    """The spec's output series (one or more named arrays), aligned to the candles."""
    return INDICATORS[spec.name].run(candles, spec.params)


class TechnicalAnalysis:
    """The original design's names (docs/architecture.md) over the functions above."""

    @staticmethod
    def calculate_sma(data: npt.ArrayLike, period: int) -> FloatArray:
        return sma(data, period)

    @staticmethod
    def calculate_ema(data: npt.ArrayLike, period: int) -> FloatArray:
        return ema(data, period)

    @staticmethod
    def calculate_rsi(data: npt.ArrayLike, period: int = 14) -> FloatArray:
        return rsi(data, period)
