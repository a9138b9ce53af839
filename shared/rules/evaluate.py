"""Vectorised evaluation of a parsed rule over candles: one boolean per candle.

Undefined values (an indicator's warm-up, a division by zero) are NaN, and any comparison
with NaN is False, so a rule is never true before its indicators exist.

A call or field with ``tf`` is computed on that timeframe's closed candles
(:func:`shared.resample.higher_candles`) and read, on each candle, from the last higher
candle closed by that candle's close (docs/trading.md, several timeframes).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.candles import Candles, FloatArray, HigherCandles
from shared.resample import higher_candles
from shared.rules.functions import FUNCTIONS
from shared.rules.parser import (
    Arithmetic,
    Call,
    Comparison,
    Field,
    Logical,
    Negate,
    Node,
    Not,
    Number,
)

BoolArray = npt.NDArray[np.bool_]
CacheKey = tuple[str, tuple[float | str, ...], str | None]  # function or field, args, tf


def lookback(node: Node) -> int:
    """Leading candles on which the rule cannot be true (its longest indicator warm-up on
    the trading timeframe; see :func:`higher_lookbacks` for the others)."""
    match node:
        case Call(tf=str()) | Field(tf=str()):
            return 0
        case Call(name=name, args=args):
            return FUNCTIONS[name].lookback(args)
        case Comparison(op=op, left=left, right=right):
            extra = 1 if op.startswith("crosses") else 0
            return max(lookback(left), lookback(right)) + extra
        case Arithmetic(left=left, right=right) | Logical(left=left, right=right):
            return max(lookback(left), lookback(right))
        case Negate(operand=operand) | Not(operand=operand):
            return lookback(operand)
        case _:
            return 0


def _children(node: Node) -> tuple[Node, ...]:
    match node:
        case Comparison(left=left, right=right) | Arithmetic(left=left, right=right):
            return (left, right)
        case Logical(left=left, right=right):
            return (left, right)
        case Negate(operand=operand) | Not(operand=operand):
            return (operand,)
        case _:
            return ()


def _higher_nodes(node: Node) -> list[Call | Field]:
    """The calls and fields of ``node`` read on a higher timeframe."""
    found: list[Call | Field] = []
    if isinstance(node, Call | Field) and node.tf is not None:
        found.append(node)
    for child in _children(node):
        found.extend(_higher_nodes(child))
    return found


def higher_lookbacks(node: Node) -> dict[str, int]:
    """Per higher timeframe the rule reads, its longest warm-up in that timeframe's
    candles."""
    out: dict[str, int] = {}
    for item in _higher_nodes(node):
        assert item.tf is not None  # noqa: S101 - _higher_nodes keeps these only
        need = FUNCTIONS[item.name].lookback(item.args) if isinstance(item, Call) else 0
        out[item.tf] = max(out.get(item.tf, 0), need)
    return out


class _Evaluator:
    def __init__(self, candles: Candles) -> None:
        self.candles = candles
        self.n = len(candles)
        self.cache: dict[CacheKey, FloatArray] = {}
        self.higher: dict[str, HigherCandles] = {}

    def timeframe(self, tf: str) -> HigherCandles:
        if tf not in self.higher:
            self.higher[tf] = higher_candles(self.candles, tf)
        return self.higher[tf]

    def number(self, node: Node) -> FloatArray:
        match node:
            case Number(value=value):
                return np.full(self.n, value, dtype=np.float64)
            case Field(name=name, tf=None):
                return self.candles.field(name)
            case Field(name=name, tf=str(tf)):
                key: CacheKey = (name, (), tf)
                if key not in self.cache:
                    higher = self.timeframe(tf)
                    self.cache[key] = higher.align(higher.candles.field(name))
                return self.cache[key]
            case Call(name=name, args=args, tf=tf):
                key = (name, args, tf)
                if key not in self.cache:
                    if tf is None:
                        self.cache[key] = FUNCTIONS[name].run(self.candles, args)
                    else:
                        higher = self.timeframe(tf)
                        values = FUNCTIONS[name].run(higher.candles, args)
                        self.cache[key] = higher.align(values)
                return self.cache[key]
            case Negate(operand=operand):
                return -self.number(operand)
            case Arithmetic(op=op, left=left, right=right):
                a, b = self.number(left), self.number(right)
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    if op == "+":
                        return a + b
                    if op == "-":
                        return a - b
                    if op == "*":
                        return a * b
                    out = a / b
                    out[~np.isfinite(out)] = np.nan
                    return out
        raise TypeError(f"not a number node: {node!r}")

    def boolean(self, node: Node) -> BoolArray:
        match node:
            case Comparison(op=op, left=left, right=right):
                a, b = self.number(left), self.number(right)
                if op == "<":
                    return a < b
                if op == "<=":
                    return a <= b
                if op == ">":
                    return a > b
                if op == ">=":
                    return a >= b
                if op == "==":
                    return np.equal(a, b)
                if op == "!=":
                    return np.not_equal(a, b) & ~np.isnan(a) & ~np.isnan(b)
                out = np.zeros(self.n, dtype=np.bool_)
                if self.n > 1:
                    if op == "crosses_above":
                        out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
                    else:
                        out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
                return out
            case Logical(op=op, left=left, right=right):
                if op == "and":
                    return self.boolean(left) & self.boolean(right)
                return self.boolean(left) | self.boolean(right)
            case Not(operand=operand):
                # NaN-safe: "not (rsi(14) < 30)" is False during the warm-up too.
                defined = lookback(operand)
                out = ~self.boolean(operand)
                out[: min(defined, self.n)] = False
                for item in _higher_nodes(operand):  # before a higher timeframe's warm-up
                    out &= ~np.isnan(self.number(item))
                return out
        raise TypeError(f"not a condition node: {node!r}")


def evaluate(node: Node, candles: Candles) -> BoolArray:
    """The rule's truth value on each candle's close."""
    return _Evaluator(candles).boolean(node)
