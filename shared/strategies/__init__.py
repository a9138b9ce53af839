"""The strategy registry (docs/trading.md, strategies): built-ins plus operator plugins.

Built-ins live in this package; plugins are :class:`TradingStrategy` subclasses published
under the entry-point group ``tradebot.strategies`` (the entry-point name is the
strategy's name). Use :func:`catalog` to list them and :func:`create_strategy` to build
one from a name and a parameter mapping.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import structlog

from shared.strategies.base import (
    ENTER_LONG,
    EXIT_LONG,
    HOLD,
    SignalAction,
    SignalArray,
    StrategyParamsError,
    TradingSignal,
    TradingStrategy,
)
from shared.strategies.bollinger import BollingerBands
from shared.strategies.ma_crossover import MACrossover
from shared.strategies.rsi_divergence import RSIDivergence
from shared.strategies.rules import RuleStrategy

__all__ = [
    "ENTER_LONG",
    "EXIT_LONG",
    "HOLD",
    "PLUGIN_GROUP",
    "SignalAction",
    "SignalArray",
    "StrategyParamsError",
    "TradingSignal",
    "TradingStrategy",
    "UnknownStrategyError",
    "catalog",
    "create_strategy",
    "strategy_classes",
]

PLUGIN_GROUP = "tradebot.strategies"
log = structlog.get_logger("strategies")


class UnknownStrategyError(LookupError):
    """No built-in or plugin strategy has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown strategy {name!r}; available: {', '.join(known)}")
        self.name = name
        self.known = known


def _builtins() -> list[type[TradingStrategy]]:
    return [MACrossover, RSIDivergence, BollingerBands, RuleStrategy]


@functools.cache
def _plugins() -> dict[str, type[TradingStrategy]]:
    found: dict[str, type[TradingStrategy]] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the platform down
            log.warning("strategy_plugin_failed", entry_point=ep.name, error=repr(exc))
            continue
        if not (isinstance(cls, type) and issubclass(cls, TradingStrategy)):
            log.warning("strategy_plugin_not_a_strategy", entry_point=ep.name)
            continue
        found[ep.name] = cls
    return found


def strategy_classes() -> dict[str, type[TradingStrategy]]:
    """Name -> class, built-ins first; a plugin never replaces a built-in."""
    classes: dict[str, type[TradingStrategy]] = {cls.name: cls for cls in _builtins()}
    for name, cls in _plugins().items():
        if name in classes:
            log.warning("strategy_plugin_shadows_builtin", name=name)
            continue
        classes[name] = cls
    return classes


def reload_plugins() -> None:
    """Forget the cached plugin scan (after installing a plugin in a running process)."""
    _plugins.cache_clear()


def catalog() -> list[dict[str, Any]]:
    """Every strategy: name, description, JSON schema of its parameters, default warm-up."""
    entries: list[dict[str, Any]] = []
    for name, cls in strategy_classes().items():
        entry: dict[str, Any] = {
            "name": name,
            "description": cls.description,
            "parameters": cls.parameter_schema(),
            "builtin": name in {c.name for c in _builtins()},
        }
        try:
            entry["warmup"] = cls({}).warmup
        except (StrategyParamsError, ValueError):
            pass  # parameters without defaults (the rule strategy): no default warm-up
        entries.append(entry)
    return entries


def create_strategy(name: str, params: Mapping[str, Any] | None = None) -> TradingStrategy:
    """Build a strategy; raises UnknownStrategyError or StrategyParamsError (clear text)."""
    classes = strategy_classes()
    cls = classes.get(name)
    if cls is None:
        raise UnknownStrategyError(name, sorted(classes))
    return cls(params or {})
