"""The search space of an optimisation: what each trial may choose, checked against the
strategy's parameter JSON schema (docs/trading.md, optimisation).

A searched name is one of three things:

- a **strategy parameter** of the catalog schema (``fast`` of ``ma_crossover``): its range
  must lie inside the schema's bounds; ``{}`` takes the bounds themselves (an exclusive
  bound is moved inward by a hundredth of the span for a number, by one for an integer)
  and an ``enum`` or boolean its values;
- a **placeholder** ``{name}`` written in a fixed text parameter (``"entry": "rsi({period})
  < {level}"`` of a rule strategy): the sampled value is written into the text, so rule
  strategies are searched like any other; a placeholder needs its own range;
- a **protective exit** of the backtest (``stop_loss``, ``take_profit``, ``trailing_stop``)
  when the request gives a range instead of a number for it.

Everything is generic over :func:`shared.strategies.catalog` and
:func:`shared.strategies.create_strategy`: a strategy kind added to the catalog is
searchable without a change here. :class:`SpaceError` carries the request location and a
message that says what to fix (the API answers it as a 422).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.strategies import (
    StrategyParamsError,
    TradingStrategy,
    UnknownStrategyError,
    catalog,
    create_strategy,
)

Kind = Literal["int", "float", "categorical"]
Target = Literal["parameter", "placeholder", "stop"]

# The backtest's protective exits and the bounds the engine accepts for each.
STOP_BOUNDS: dict[str, dict[str, Any]] = {
    "stop_loss": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "take_profit": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
    "trailing_stop": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
}
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_CHOICES = 1000
MAX_GRID = 100_000
# Points tried to find the largest warm-up and to prove the space holds a valid strategy.
PROBES = 64


class SpaceError(ValueError):
    """A search space that cannot be searched; ``loc`` is where in the request."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc = list(loc)
        self.message = message


@dataclass(frozen=True)
class Dimension:
    """One searched name and the values a trial may give it."""

    name: str
    kind: Kind
    target: Target
    low: float = 0.0  # low, high, step, log: numeric kinds only
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[Any] | None:
        """Every value, or None when there are too many to list (a float without a step)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            count = (int(self.high) - int(self.low)) // step + 1
            if count > MAX_GRID:
                return None
            return list(range(int(self.low), int(self.high) + 1, step))
        if self.step is None:
            return None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        if count > MAX_GRID:
            return None
        return [round(self.low + i * self.step, 12) for i in range(count)]

    def corners(self) -> list[Any]:
        """The values a probe of the space starts from: both ends, or every choice."""
        if self.kind == "categorical":
            return list(self.choices)
        return [self._cast(self.low), self._cast(self.high)]

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "categorical":
            return rng.choice(self.choices)
        if self.kind == "int":
            step = int(self.step or 1)
            return int(self.low) + step * rng.randint(0, (int(self.high) - int(self.low)) // step)
        if self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9)
            return round(self.low + self.step * rng.randint(0, count), 12)
        return rng.uniform(self.low, self.high)

    def _cast(self, value: float) -> Any:
        return int(value) if self.kind == "int" else value

    def to_json(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices), "target": self.target}
        out: dict[str, Any] = {
            "low": self._cast(self.low),
            "high": self._cast(self.high),
            "target": self.target,
        }
        if self.step is not None:
            out["step"] = self._cast(self.step)
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The strategy, its fixed parameters, and the searched dimensions."""

    strategy: str
    fixed: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    fixed_stops: dict[str, float | None] = field(default_factory=dict)
    warmup: int = 0  # the largest warm-up found over the space (candles)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask the trial for a value of every dimension (Optuna's define-by-run API)."""
        values: dict[str, Any] = {}
        for d in self.dimensions:
            if d.kind == "categorical":
                values[d.name] = trial.suggest_categorical(d.name, list(d.choices))
            elif d.kind == "int":
                values[d.name] = trial.suggest_int(
                    d.name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log
                )
            else:
                values[d.name] = trial.suggest_float(d.name, d.low, d.high, step=d.step, log=d.log)
        return values

    def resolve(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]]:
        """Strategy parameters and protective exits for one point of the space."""
        params = dict(self.fixed)
        stops = dict(self.fixed_stops)
        placeholders: dict[str, Any] = {}
        for d in self.dimensions:
            value = values[d.name]
            if d.target == "parameter":
                params[d.name] = value
            elif d.target == "stop":
                stops[d.name] = float(value)
            else:
                placeholders[d.name] = value
        if placeholders:
            for key, text in params.items():
                if isinstance(text, str):
                    params[key] = PLACEHOLDER.sub(
                        lambda m: (
                            _format(placeholders[m.group(1)])
                            if m.group(1) in placeholders
                            else m.group(0)
                        ),
                        text,
                    )
        return params, stops

    def build(self, values: Mapping[str, Any]) -> tuple[TradingStrategy, dict[str, float | None]]:
        """The strategy of one point (StrategyParamsError when its parameters do not fit)."""
        params, stops = self.resolve(values)
        return create_strategy(self.strategy, params), stops

    def grid(self) -> dict[str, list[Any]] | None:
        """Every value of every dimension, or None when a dimension cannot be listed."""
        out: dict[str, list[Any]] = {}
        for d in self.dimensions:
            values = d.grid()
            if values is None:
                return None
            out[d.name] = values
        return out

    def grid_size(self) -> int | None:
        grid = self.grid()
        return None if grid is None else math.prod(len(v) for v in grid.values())

    def to_json(self) -> dict[str, Any]:
        return {d.name: d.to_json() for d in self.dimensions}


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def _schema_of(strategy: str) -> dict[str, Any]:
    entries = catalog()
    for entry in entries:
        if entry["name"] == strategy:
            schema: dict[str, Any] = entry["parameters"]
            return schema
    unknown = UnknownStrategyError(strategy, sorted(e["name"] for e in entries))
    raise SpaceError(["body", "strategy"], str(unknown))


def _resolve_ref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        merged = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _resolve_ref(merged, root)
    return schema


def _property(schema: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The non-null branch of a property (``anyOf: [X, null]``) and whether null is allowed."""
    schema = _resolve_ref(schema, root)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if not branches:
        return schema, schema.get("type") == "null"
    nullable = False
    chosen: dict[str, Any] = {}
    for branch in branches:
        branch = _resolve_ref(branch, root)
        if branch.get("type") == "null":
            nullable = True
        elif not chosen:
            chosen = branch
    return chosen, nullable


def _kind_of(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "enum"
    if "const" in prop:
        return "enum"
    kind = prop.get("type")
    return kind if isinstance(kind, str) else "unknown"


def _bounds(prop: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low exclusive, high, high exclusive) of a numeric schema."""
    low, low_x, high, high_x = prop.get("minimum"), False, prop.get("maximum"), False
    if "exclusiveMinimum" in prop and (low is None or prop["exclusiveMinimum"] >= low):
        low, low_x = prop["exclusiveMinimum"], True
    if "exclusiveMaximum" in prop and (high is None or prop["exclusiveMaximum"] <= high):
        high, high_x = prop["exclusiveMaximum"], True
    return low, low_x, high, high_x


def _describe_bounds(prop: dict[str, Any]) -> str:
    low, low_x, high, high_x = _bounds(prop)
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_x else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_x else '<='} {high:g}")
    return " and ".join(parts) or "no bounds"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(name: str, value: Any, prop: dict[str, Any], nullable: bool) -> str | None:
    """Why ``value`` does not fit the property, or None when it does."""
    if value is None:
        return None if nullable else f"{name} may not be null"
    kind = _kind_of(prop)
    if kind == "enum":
        allowed = prop.get("enum", [prop.get("const")])
        return None if value in allowed else f"{value!r} is not one of {allowed}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{value!r} is not true or false"
    if kind == "string":
        return None if isinstance(value, str) else f"{value!r} is not text"
    if kind in ("integer", "number"):
        if not _number(value) or (kind == "integer" and not float(value).is_integer()):
            return f"{value!r} is not {'a whole number' if kind == 'integer' else 'a number'}"
        low, low_x, high, high_x = _bounds(prop)
        if low is not None and (value < low or (low_x and value == low)):
            return f"{value:g} is below what {name} allows ({_describe_bounds(prop)})"
        if high is not None and (value > high or (high_x and value == high)):
            return f"{value:g} is above what {name} allows ({_describe_bounds(prop)})"
    return None


def _dimension(
    name: str,
    spec: Mapping[str, Any],
    prop: dict[str, Any] | None,
    nullable: bool,
    target: Target,
    loc: list[str | int],
) -> Dimension:
    """One dimension from its request spec, checked against its schema property."""
    choices = spec.get("choices")
    low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log")
    log = bool(log)
    kind = _kind_of(prop) if prop is not None else "unknown"

    if choices is not None:
        if low is not None or high is not None or step is not None or log:
            raise SpaceError(loc, f"{name}: give either choices or low/high, not both")
        if not choices:
            raise SpaceError([*loc, "choices"], f"{name}: choices is empty; list a value or more")
        if prop is not None:
            for i, choice in enumerate(choices):
                problem = _check_value(name, choice, prop, nullable)
                if problem:
                    raise SpaceError([*loc, "choices", i], f"{name}: {problem}")
        return Dimension(name, "categorical", target, choices=tuple(choices))

    if prop is not None and kind in ("enum", "boolean") and low is None and high is None:
        values = [True, False] if kind == "boolean" else list(prop.get("enum", []))
        return Dimension(name, "categorical", target, choices=tuple(values))
    if prop is not None and kind not in ("integer", "number"):
        raise SpaceError(
            loc,
            f"{name} is {'a text' if kind == 'string' else kind} parameter: search it with "
            "choices (a list of values)",
        )
    integer = kind == "integer"
    if prop is None and not (_number(low) and _number(high)):
        raise SpaceError(loc, f"{name}: give low and high (or choices) for it")
    if prop is not None:
        s_low, s_low_x, s_high, s_high_x = _bounds(prop)
        if low is None:
            if s_low is None:
                raise SpaceError(loc, f"{name}: the strategy's schema has no lower bound: give low")
            span = (s_high - s_low) if s_high is not None else abs(s_low) or 1.0
            low = s_low + ((1 if integer else span / 100) if s_low_x else 0)
        if high is None:
            if s_high is None:
                raise SpaceError(
                    loc, f"{name}: the strategy's schema has no upper bound: give high"
                )
            span = (s_high - s_low) if s_low is not None else abs(s_high) or 1.0
            high = s_high - ((1 if integer else span / 100) if s_high_x else 0)
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is None:
            continue
        if not _number(value):
            raise SpaceError([*loc, key], f"{name}: {key} must be a number")
        if integer and not float(value).is_integer():
            raise SpaceError([*loc, key], f"{name} is a whole number; {key} must be one too")
    if low is None or high is None:  # both set above; for the type checker
        raise SpaceError(loc, f"{name}: give low and high")
    if prop is not None:
        for key, value in (("low", low), ("high", high)):
            problem = _check_value(name, value, prop, nullable)
            if problem:
                raise SpaceError([*loc, key], f"{name}: {key} {problem}")
    if low > high:
        raise SpaceError(loc, f"{name}: low ({low:g}) is above high ({high:g})")
    if step is not None and step <= 0:
        raise SpaceError([*loc, "step"], f"{name}: step must be above 0")
    if log and step is not None and not (integer and step == 1):
        raise SpaceError(loc, f"{name}: a log scale takes no step")
    if log and low <= 0:
        raise SpaceError([*loc, "low"], f"{name}: a log scale needs low above 0")
    if step is not None and (high - low) / step > MAX_GRID * 10:
        raise SpaceError([*loc, "step"], f"{name}: step {step:g} makes too many values")
    if integer or (prop is None and all(float(v).is_integer() for v in (low, high, step or 1))):
        return Dimension(
            name,
            "int",
            target,
            low=int(low),
            high=int(high),
            step=None if step is None or log else int(step),
            log=log,
        )
    return Dimension(
        name, "float", target, low=float(low), high=float(high),
        step=None if step is None else float(step), log=log,
    )  # fmt: skip


def build_space(
    strategy: str,
    fixed: Mapping[str, Any],
    space: Mapping[str, Mapping[str, Any] | None],
    stops: Mapping[str, float | Mapping[str, Any] | None],
) -> SearchSpace:
    """Check a search space against the strategy's schema; raises :class:`SpaceError`."""
    schema = _schema_of(strategy)
    properties: dict[str, Any] = schema.get("properties") or {}
    placeholders: set[str] = set()
    for key, value in fixed.items():
        if key not in properties:
            known = ", ".join(properties) or "none"
            raise SpaceError(
                ["body", "parameters", key],
                f"{strategy} has no parameter {key!r} (its parameters: {known})",
            )
        if isinstance(value, str):
            placeholders.update(PLACEHOLDER.findall(value))
    missing = sorted(placeholders - set(space))
    if missing:
        raise SpaceError(
            ["body", "space"],
            f"the parameters use placeholder(s) {', '.join('{' + m + '}' for m in missing)}; "
            "give each a range in space",
        )
    searched_stops = {k: v for k, v in stops.items() if isinstance(v, Mapping)}
    if not space and not searched_stops:
        numeric = [
            name
            for name, prop in properties.items()
            if _kind_of(_property(prop, schema)[0]) in ("integer", "number")
        ]
        example = f' e.g. {{"{numeric[0]}": {{}}}} for its whole range' if numeric else ""
        raise SpaceError(
            ["body", "space"],
            f"the search space is empty: name at least one parameter to search,{example}",
        )
    dimensions: list[Dimension] = []
    for name, spec in space.items():
        loc: list[str | int] = ["body", "space", name]
        spec = spec or {}
        if name in fixed:
            raise SpaceError(loc, f"{name} is both fixed in parameters and searched; pick one")
        if name in properties:
            prop, nullable = _property(properties[name], schema)
            dimensions.append(_dimension(name, spec, prop, nullable, "parameter", loc))
        elif name in placeholders:
            dimensions.append(_dimension(name, spec, None, False, "placeholder", loc))
        else:
            known = ", ".join(properties) or "none"
            hint = f"; placeholders in its text parameters: {', '.join(sorted(placeholders))}"
            raise SpaceError(
                loc,
                f"{strategy} has no parameter {name!r} (its parameters: {known}"
                f"{hint if placeholders else ''})",
            )
    fixed_stops: dict[str, float | None] = {}
    for name, value in stops.items():
        loc = ["body", name]
        if isinstance(value, Mapping):
            if name in space:
                raise SpaceError(
                    loc, f"{name} is searched both as a strategy parameter and as a stop"
                )
            dimensions.append(_dimension(name, value, STOP_BOUNDS[name], False, "stop", loc))
        else:
            fixed_stops[name] = value
    result = SearchSpace(strategy, dict(fixed), tuple(dimensions), fixed_stops)
    found = probe(result)
    if found.valid == 0:
        raise SpaceError(
            ["body", "space"],
            f"no point of this search space gives valid parameters: {found.error}",
        )
    return replace(result, warmup=found.warmup)


@dataclass(frozen=True)
class Probe:
    """What sampling a space found: valid points, the largest warm-up, the last error."""

    valid: int
    warmup: int
    error: str


def probe(space: SearchSpace, *, samples: int = PROBES, seed: int = 0) -> Probe:
    """Build the strategy at the corners of the space and at random points."""
    rng = random.Random(seed)
    points: list[dict[str, Any]] = []
    for pick in (0, -1):  # every dimension at its low end, then its high end
        points.append({d.name: d.corners()[pick] for d in space.dimensions})
    for d in space.dimensions:  # one dimension at its high end, the others low
        point = {e.name: e.corners()[0] for e in space.dimensions}
        point[d.name] = d.corners()[-1]
        points.append(point)
    points += [{d.name: d.sample(rng) for d in space.dimensions} for _ in range(samples)]
    valid, warmup, error = 0, 0, ""
    for point in points:
        try:
            strategy, _ = space.build(point)
        except (StrategyParamsError, ValueError) as exc:
            error = str(exc)
            continue
        valid += 1
        warmup = max(warmup, int(strategy.warmup))
    return Probe(valid, warmup, error)
