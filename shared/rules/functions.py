"""The whitelist of the rule language: candle fields and indicator functions.

Each function has named parameters with defaults; a candle field may be passed where a
function reads a price series (``sma(20, high)``). Periods are whole numbers from 1 to
10,000; nothing outside this table can be called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import talib

from shared import indicators
from shared.candles import Candles, FloatArray

FIELDS = ("open", "high", "low", "close", "volume")
MAX_PERIOD = indicators.MAX_PERIOD

Args = tuple[float | str, ...]


@dataclass(frozen=True)
class FunctionSpec:
    """Parameters (name, default; a str default means "a candle field")."""

    params: tuple[tuple[str, float | str], ...]
    run: Callable[[Candles, Args], FloatArray]
    lookback: Callable[[Args], int]

    def bind(
        self, values: Sequence[float | str], keywords: Mapping[str, float | str] | None = None
    ) -> Args:
        """Positional then keyword values -> every parameter, defaults filled in; checked."""
        if len(values) > len(self.params):
            names = ", ".join(name for name, _ in self.params) or "no arguments"
            raise ValueError(f"takes at most {len(self.params)} arguments ({names})")
        numbers = [v for v in values if not isinstance(v, str)]
        fields = [v for v in values if isinstance(v, str)]
        number_params = [(n, d) for n, d in self.params if not isinstance(d, str)]
        field_params = [(n, d) for n, d in self.params if isinstance(d, str)]
        if len(numbers) > len(number_params) or len(fields) > len(field_params):
            raise ValueError(
                "expects "
                + ", ".join(
                    f"{name} ({'a field' if isinstance(d, str) else 'a number'})"
                    for name, d in self.params
                )
            )
        bound: dict[str, float | str] = dict(self.params)
        for (name, _), number in zip(number_params, numbers, strict=False):
            bound[name] = number
        for (name, _), field in zip(field_params, fields, strict=False):
            bound[name] = field
        given = {name for name, _ in number_params[: len(numbers)]}
        given |= {name for name, _ in field_params[: len(fields)]}
        for name, value in (keywords or {}).items():
            if name not in bound:
                names = ", ".join(n for n, _ in self.params) or "no arguments"
                raise ValueError(f"has no parameter {name!r} (parameters: {names}, tf)")
            if name in given:
                raise ValueError(f"{name} given twice")
            if isinstance(value, str) != isinstance(bound[name], str):
                kind = "a candle field" if isinstance(bound[name], str) else "a number"
                raise ValueError(f"{name} must be {kind}")
            bound[name] = value
        for name, value in bound.items():
            if isinstance(value, float | int) and name != "k":
                if value != int(value) or not 1 <= value <= MAX_PERIOD:
                    raise ValueError(f"{name} must be a whole number from 1 to {MAX_PERIOD}")
            if name == "k" and not 0 < float(value) <= 10:
                raise ValueError("k must be above 0 and at most 10")
        if "fast" in bound and float(bound["fast"]) >= float(bound["slow"]):
            raise ValueError("fast must be smaller than slow")
        return tuple(bound[name] for name, _ in self.params)


def _n(value: float | str) -> int:
    return int(value)  # bind() checked it is a whole number


def _src(candles: Candles, value: float | str) -> FloatArray:
    return candles.field(str(value))


def _macd(part: int) -> Callable[[Candles, Args], FloatArray]:
    return lambda c, a: indicators.macd(c.close, _n(a[0]), _n(a[1]), _n(a[2]))[part]


def _bb(part: int) -> Callable[[Candles, Args], FloatArray]:
    return lambda c, a: indicators.bbands(_src(c, a[2]), _n(a[0]), float(a[1]))[part]


def _stoch(part: int) -> Callable[[Candles, Args], FloatArray]:
    return lambda c, a: indicators.stoch(c.high, c.low, c.close, _n(a[0]), _n(a[1]), _n(a[2]))[part]


_MACD = (("fast", 12.0), ("slow", 26.0), ("signal", 9.0))
_BB = (("period", 20.0), ("k", 2.0), ("source", "close"))
_STOCH = (("fastk", 14.0), ("slowk", 3.0), ("slowd", 3.0))

FUNCTIONS: dict[str, FunctionSpec] = {
    "sma": FunctionSpec(
        (("period", 20.0), ("source", "close")),
        lambda c, a: indicators.sma(_src(c, a[1]), _n(a[0])),
        lambda a: _n(a[0]) - 1,
    ),
    "ema": FunctionSpec(
        (("period", 20.0), ("source", "close")),
        lambda c, a: indicators.ema(_src(c, a[1]), _n(a[0])),
        lambda a: _n(a[0]) - 1,
    ),
    "rsi": FunctionSpec(
        (("period", 14.0), ("source", "close")),
        lambda c, a: indicators.rsi(_src(c, a[1]), _n(a[0])),
        lambda a: _n(a[0]),
    ),
    "macd": FunctionSpec(_MACD, _macd(0), lambda a: _n(a[1]) + _n(a[2]) - 2),
    "macd_signal": FunctionSpec(_MACD, _macd(1), lambda a: _n(a[1]) + _n(a[2]) - 2),
    "macd_hist": FunctionSpec(_MACD, _macd(2), lambda a: _n(a[1]) + _n(a[2]) - 2),
    "bb_upper": FunctionSpec(_BB, _bb(0), lambda a: _n(a[0]) - 1),
    "bb_middle": FunctionSpec(_BB, _bb(1), lambda a: _n(a[0]) - 1),
    "bb_lower": FunctionSpec(_BB, _bb(2), lambda a: _n(a[0]) - 1),
    "stoch_k": FunctionSpec(_STOCH, _stoch(0), lambda a: _n(a[0]) + _n(a[1]) + _n(a[2]) - 3),
    "stoch_d": FunctionSpec(_STOCH, _stoch(1), lambda a: _n(a[0]) + _n(a[1]) + _n(a[2]) - 3),
    "atr": FunctionSpec(
        (("period", 14.0),),
        lambda c, a: indicators.atr(c.high, c.low, c.close, _n(a[0])),
        lambda a: _n(a[0]),
    ),
    "obv": FunctionSpec((), lambda c, a: indicators.obv(c.close, c.volume), lambda a: 0),
    "highest": FunctionSpec(
        (("period", 20.0), ("source", "high")),
        lambda c, a: indicators._f64(talib.MAX(_src(c, a[1]), timeperiod=_n(a[0]))),
        lambda a: _n(a[0]) - 1,
    ),
    "lowest": FunctionSpec(
        (("period", 20.0), ("source", "low")),
        lambda c, a: indicators._f64(talib.MIN(_src(c, a[1]), timeperiod=_n(a[0]))),
        lambda a: _n(a[0]) - 1,
    ),
}
