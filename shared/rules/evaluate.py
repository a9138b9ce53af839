"""Vectorised evaluation of a parsed rule over candles: one boolean per candle.

Undefined values (an indicator's warm-up, a division by zero) are NaN, and any comparison
with NaN is False, so a rule is never true before its indicators exist.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.candles import Candles, FloatArray
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


def lookback(node: Node) -> int:
    """Leading candles on which the rule cannot be true (its longest indicator warm-up)."""
    match node:
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


class _Evaluator:
    def __init__(self, candles: Candles) -> None:
        self.candles = candles
        self.n = len(candles)
        self.cache: dict[tuple[str, tuple[float | str, ...]], FloatArray] = {}

    def number(self, node: Node) -> FloatArray:
        match node:
            case Number(value=value):
                return np.full(self.n, value, dtype=np.float64)
            case Field(name=name):
                return self.candles.field(name)
            case Call(name=name, args=args):
                key = (name, args)
                if key not in self.cache:
                    self.cache[key] = FUNCTIONS[name].run(self.candles, args)
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
                return out
        raise TypeError(f"not a condition node: {node!r}")


def evaluate(node: Node, candles: Candles) -> BoolArray:
    """The rule's truth value on each candle's close."""
    return _Evaluator(candles).boolean(node)
