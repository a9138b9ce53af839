"""Declared parameters of DataFrame strategies, in freqtrade's spelling (docs/trading.md,
DataFrame strategies).

A parameter is a class attribute (``buy_rsi = IntParameter(10, 40, default=30)``); the
strategy class turns them into its pydantic ``Params`` model, so the catalog shows their
JSON schema (type, bounds, default, search space) and a saved strategy, a bot, a backtest
or the optimiser hands values that are checked like any strategy's. Each strategy
instance holds its own copies: ``self.buy_rsi.value`` is that instance's value.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo

__all__ = [
    "BooleanParameter",
    "CategoricalParameter",
    "DecimalParameter",
    "IntParameter",
    "Parameter",
    "RealParameter",
]

SPACES = ("buy", "sell", "enter", "exit", "protection")


class Parameter:
    """A strategy parameter: a default, where the optimiser may search, and its value."""

    def __init__(
        self, *, default: Any, space: str | None = None, optimize: bool = True, load: bool = True
    ) -> None:
        self.default = default
        self.space = space
        self.optimize = optimize
        self.load = load  # freqtrade's flag for its hyperopt result files; nothing to load here
        self._value = default

    @property
    def value(self) -> Any:
        return self._value

    @property
    def range(self) -> Sequence[Any]:
        """freqtrade's ``.range`` outside hyperopt: the value alone."""
        return [self.value]

    def bound(self, value: Any) -> Parameter:
        """A copy holding ``value`` (one per strategy instance)."""
        bound = copy.copy(self)
        bound._value = value
        return bound

    def annotation(self) -> Any:
        raise NotImplementedError

    def constraints(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        raise NotImplementedError

    def field(self, name: str) -> tuple[Any, FieldInfo]:
        """The pydantic field of this parameter (its JSON schema in the catalog)."""
        space = self.space or next((s for s in SPACES if name.startswith(f"{s}_")), None)
        extra: dict[str, Any] = {"x-optimize": self.optimize}
        if space is not None:
            extra["x-space"] = space
        info: FieldInfo = Field(
            default=self.default,
            description=self.describe() + (f" ({space} space)" if space else ""),
            json_schema_extra=extra,
            **self.constraints(),
        )
        return self.annotation(), info


def _bounds(low: float | Sequence[float], high: float | None) -> tuple[float, float]:
    if high is None:
        if isinstance(low, int | float) or len(low) != 2:
            raise TypeError("give low and high, or one [low, high] pair")
        return _bounds(low[0], low[1])
    if not isinstance(low, int | float):
        raise TypeError("low must be a number when high is given")
    if low > high:
        raise TypeError(f"low {low} is above high {high}")
    return low, high


class _Ranged(Parameter):
    def __init__(
        self,
        low: float | Sequence[float],
        high: float | None = None,
        *,
        default: float,
        space: str | None = None,
        optimize: bool = True,
        load: bool = True,
        **_: Any,
    ) -> None:
        self.low, self.high = _bounds(low, high)
        if not self.low <= default <= self.high:
            raise TypeError(f"default {default} lies outside [{self.low}, {self.high}]")
        super().__init__(default=default, space=space, optimize=optimize, load=load)

    def constraints(self) -> dict[str, Any]:
        return {"ge": self.low, "le": self.high}


class IntParameter(_Ranged):
    """A whole number from ``low`` to ``high``."""

    def __init__(
        self,
        low: int | Sequence[int],
        high: int | None = None,
        *,
        default: int,
        space: str | None = None,
        optimize: bool = True,
        load: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            low, high, default=default, space=space, optimize=optimize, load=load, **kwargs
        )
        self.low, self.high = int(self.low), int(self.high)

    @property
    def range(self) -> Sequence[int]:
        return range(int(self.value), int(self.value) + 1)

    def annotation(self) -> Any:
        return int

    def describe(self) -> str:
        return f"Whole number from {self.low} to {self.high}"


class RealParameter(_Ranged):
    """A real number from ``low`` to ``high``."""

    def annotation(self) -> Any:
        return float

    def describe(self) -> str:
        return f"Number from {self.low} to {self.high}"


class DecimalParameter(_Ranged):
    """A number from ``low`` to ``high`` with ``decimals`` places (its value is rounded)."""

    def __init__(
        self,
        low: float | Sequence[float],
        high: float | None = None,
        *,
        default: float,
        decimals: int = 3,
        space: str | None = None,
        optimize: bool = True,
        load: bool = True,
        **kwargs: Any,
    ) -> None:
        self.decimals = decimals
        super().__init__(
            low, high, default=default, space=space, optimize=optimize, load=load, **kwargs
        )

    @property
    def value(self) -> float:
        return round(float(self._value), self.decimals)

    def annotation(self) -> Any:
        return float

    def field(self, name: str) -> tuple[Any, FieldInfo]:
        annotation, info = super().field(name)
        extra = info.json_schema_extra
        if isinstance(extra, dict):
            extra["x-decimals"] = self.decimals
        return annotation, info

    def describe(self) -> str:
        return f"Number from {self.low} to {self.high}, {self.decimals} decimals"


class CategoricalParameter(Parameter):
    """One of ``categories`` (numbers, text or booleans)."""

    def __init__(
        self,
        categories: Sequence[Any],
        *,
        default: Any = None,
        space: str | None = None,
        optimize: bool = True,
        load: bool = True,
        **_: Any,
    ) -> None:
        if len(categories) < 2:
            raise TypeError("a categorical parameter needs at least two categories")
        self.categories = list(categories)
        default = self.categories[0] if default is None else default
        if default not in self.categories:
            raise TypeError(f"default {default!r} is not one of {self.categories}")
        super().__init__(default=default, space=space, optimize=optimize, load=load)

    def annotation(self) -> Any:
        return Literal[tuple(self.categories)]

    def describe(self) -> str:
        return "One of " + ", ".join(repr(c) for c in self.categories)


class BooleanParameter(CategoricalParameter):
    """True or False."""

    def __init__(
        self,
        *,
        default: bool = True,
        space: str | None = None,
        optimize: bool = True,
        load: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            [True, False], default=default, space=space, optimize=optimize, load=load, **kwargs
        )

    def annotation(self) -> Any:
        return bool

    def describe(self) -> str:
        return "True or false"
