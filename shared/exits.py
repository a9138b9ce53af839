"""Protective exits (docs/trading.md, protective exits): the one rule that backtests and
bots both follow.

:func:`protective_exit` is written once, in arithmetic that works on floats and on
``Decimal`` alike: the backtest's compiled loop calls its numba build
(:data:`protective_exit_compiled`), a bot calls the Python function with ``Decimal``
money. A stop loss, trailing stop and take profit act as resting orders at their levels,
judged against one candle's open, high and low with the levels as they stood before the
candle (the peak up to the previous candle).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar, cast

from numba import njit
from numba.extending import register_jitable

# Exit reason codes (the backtest kernel's trade columns share them).
NO_EXIT, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP = 0, 2, 3, 4
REASONS = {STOP_LOSS: "stop_loss", TAKE_PROFIT: "take_profit", TRAILING_STOP: "trailing_stop"}

Price = TypeVar("Price", float, Decimal)


def protective_exit(
    open_: Price,
    high: Price,
    low: Price,
    entry: Price,
    peak: Price,
    stop_loss: Price,
    take_profit: Price,
    trailing_stop: Price,
) -> tuple[int, Price]:
    """``(reason, price)`` of the exit this candle triggers, ``(NO_EXIT, 0)`` if none.

    ``stop_loss``, ``take_profit`` and ``trailing_stop`` are fractions of ``entry``; 0
    means "not set". ``peak`` is the highest of the entry and the highs of the candles
    closed since the entry, *before* this one. The stop level is the stop loss level,
    raised to the trailing level when that is higher (live from the entry); it fires on
    ``low <= level`` and fills at ``min(open, level)`` (a gap through it fills at the
    open). Otherwise the take profit fires on ``high >= target`` at ``max(open, target)``.
    A candle touching both is read as stop first (its high and low cannot tell the order).
    Slippage and fees are the caller's.
    """
    zero = entry * 0
    reason, level = stop_level(entry, peak, stop_loss, trailing_stop)
    if reason != NO_EXIT and low <= level:
        return reason, min(open_, level)
    if take_profit > 0:
        target = entry * (1 + take_profit)
        if high >= target:
            return TAKE_PROFIT, max(open_, target)
    return NO_EXIT, zero


@register_jitable(inline="always")  # plain for Decimal callers, compiled in the kernel
def stop_level(
    entry: Price, peak: Price, stop_loss: Price, trailing_stop: Price
) -> tuple[int, Price]:
    """``(reason, level)`` of the stop: the stop loss level raised to the trailing level
    when that is higher; ``(NO_EXIT, 0)`` when neither is set. A live bot rests its venue
    stop order here."""
    level = entry * 0
    reason = NO_EXIT
    if stop_loss > 0:
        level = entry * (1 - stop_loss)
        reason = STOP_LOSS
    if trailing_stop > 0:
        trail = peak * (1 - trailing_stop)
        if trail > level:
            level = trail
            reason = TRAILING_STOP
    return reason, level


def next_peak(peak: Price, high: Price) -> Price:
    """The peak after a candle that did not exit: its high counts from the next candle."""
    return max(peak, high)


# The numba builds, on float64 (the kernel's), inlined into the kernel's loop (a call per
# candle costs it about half its speed). Numba's on-disk cache does not follow imports:
# after editing this module, clear the kernel's __pycache__/*.nb* files.
protective_exit_compiled = cast(
    "Callable[..., tuple[int, float]]",
    njit(cache=True, nogil=True, inline="always")(protective_exit),
)
next_peak_compiled = cast(
    "Callable[[float, float], float]", njit(cache=True, nogil=True, inline="always")(next_peak)
)
