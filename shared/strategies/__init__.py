"""The strategy registry (docs/trading.md, strategies): built-ins plus operator plugins.

Built-ins live in this package. The operator adds strategies two ways (users never
upload code; they have the rule language):

- entry points: :class:`TradingStrategy` subclasses published under the group
  ``tradebot.strategies`` by an installed package (the entry-point name is the
  strategy's name);
- a folder: ``STRATEGIES_DIR`` names a folder of Python files; every strategy class
  defined in one is registered under its ``name`` (a DataFrame strategy's class name
  unless it sets one). Files starting with ``_`` are skipped.

A broken plugin is logged and skipped, never taking the platform down; a plugin never
replaces a built-in, and the first of two plugins with one name wins. Use
:func:`catalog` to list them and :func:`create_strategy` to build one from a name and a
parameter mapping.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog

from shared.settings import StrategySettings
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


FOLDER_MODULES = "tradebot_strategies"  # the package name the folder's files load under


def _entry_point_strategies() -> dict[str, type[TradingStrategy]]:
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
        found.setdefault(ep.name, cls)
    return found


def _folder_strategies(folder: Path) -> dict[str, type[TradingStrategy]]:
    """The strategy classes defined in the folder's Python files."""
    if not folder.is_dir():
        log.warning("strategy_folder_missing", folder=str(folder))
        return {}
    found: dict[str, type[TradingStrategy]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"{FOLDER_MODULES}.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a *.py file always has one
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # pydantic and dataclasses look their module up
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken file must not take the platform down
            sys.modules.pop(module_name, None)
            log.warning("strategy_plugin_failed", file=str(path), error=repr(exc))
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, TradingStrategy)
                and value.__module__ == module_name
                and not inspect.isabstract(value)
            ):
                if value.name in found:
                    log.warning("strategy_plugin_duplicate", name=value.name, file=str(path))
                    continue
                found[value.name] = value
    return found


@functools.cache
def _plugins() -> dict[str, type[TradingStrategy]]:
    found = _entry_point_strategies()
    folder = StrategySettings().strategies_dir.strip()
    if folder:
        for name, cls in _folder_strategies(Path(folder)).items():
            if name in found:
                log.warning("strategy_plugin_duplicate", name=name, folder=folder)
                continue
            found[name] = cls
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
        timeframe = getattr(cls, "timeframe", None)
        if isinstance(timeframe, str):
            entry["timeframe"] = timeframe  # the one a DataFrame strategy was written for
        try:
            default = cls({})
            entry["warmup"] = default.warmup
            entry["higher_timeframes"] = sorted(default.higher_timeframes())
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
