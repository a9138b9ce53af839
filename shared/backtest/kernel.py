"""The compiled fill loop of the backtest engine (numba, cached on disk).

One pass over the candles; the semantics are those of docs/trading.md (backtests), spelled out in
:mod:`shared.backtest.engine`. The loop can run over a range of candles at a time, its
state carried in a small array, so callers can report progress between chunks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shared.exits import NO_EXIT, next_peak_compiled, protective_exit_compiled

# exit_reason codes (names in shared.backtest.engine.EXIT_REASONS; the protective ones
# are shared.exits')
SIGNAL, END = 1, 5

# indices into the state array
CASH, QTY, ENTRY_FILL, ENTRY_FEE, PEAK, IN_POSITION, ENTRY_INDEX, N_TRADES, EXPOSED = range(9)
STATE_SIZE = 9


@njit(cache=True, nogil=True, inline="always")
def book_sale(
    k: int,
    entry_index: int,
    t: int,
    entry_fill: float,
    entry_fee: float,
    qty: float,
    fill: float,
    fee: float,
    reason: int,
    t_entry_idx: np.ndarray,
    t_exit_idx: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> float:
    """Write the sale of ``qty`` at ``fill`` as trade ``k``; returns the cash it brings in
    (the one arithmetic of a closing trade, single-pair and portfolio loops alike)."""
    proceeds = qty * fill
    exit_fee = proceeds * fee
    t_entry_idx[k] = entry_index
    t_exit_idx[k] = t
    t_entry_price[k] = entry_fill
    t_exit_price[k] = fill
    t_qty[k] = qty
    t_pnl[k] = (proceeds - exit_fee) - (qty * entry_fill + entry_fee)
    t_fee[k] = entry_fee + exit_fee
    t_reason[k] = reason
    return proceeds - exit_fee


@njit(cache=True, nogil=True)
def _close_position(
    state: np.ndarray,
    t: int,
    fill: float,
    fee: float,
    reason: int,
    t_entry_idx: np.ndarray,
    t_exit_idx: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> None:
    k = int(state[N_TRADES])
    state[CASH] += book_sale(
        k, int(state[ENTRY_INDEX]), t, state[ENTRY_FILL], state[ENTRY_FEE], state[QTY], fill,
        fee, reason, t_entry_idx, t_exit_idx, t_entry_price, t_exit_price, t_qty, t_pnl, t_fee,
        t_reason,
    )  # fmt: skip
    state[N_TRADES] = k + 1
    state[QTY] = 0.0
    state[IN_POSITION] = 0.0


@njit(cache=True, nogil=True)
def simulate(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    signals: np.ndarray,
    start: int,
    stop: int,
    fee: float,
    slippage: float,
    size: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    state: np.ndarray,
    equity: np.ndarray,
    t_entry_idx: np.ndarray,
    t_exit_idx: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> None:
    """Candles ``start .. stop-1``; stops/take-profit of 0 mean "none"."""
    for t in range(start, stop):
        # 1. act at this candle's open on the previous candle's signal
        if t > 0:
            s = signals[t - 1]
            if s == 1 and state[IN_POSITION] == 0.0:
                fill = open_[t] * (1.0 + slippage)
                qty = state[CASH] * size / (fill * (1.0 + fee))
                cost = qty * fill
                entry_fee = cost * fee
                state[CASH] -= cost + entry_fee
                state[QTY] = qty
                state[ENTRY_FILL] = fill
                state[ENTRY_FEE] = entry_fee
                state[PEAK] = fill
                state[ENTRY_INDEX] = t
                state[IN_POSITION] = 1.0
            elif s == -1 and state[IN_POSITION] == 1.0:
                _close_position(
                    state, t, open_[t] * (1.0 - slippage), fee, SIGNAL,
                    t_entry_idx, t_exit_idx, t_entry_price, t_exit_price, t_qty, t_pnl,
                    t_fee, t_reason,
                )  # fmt: skip
        # 2. protective exits inside the candle (the shared rule, shared/exits.py)
        if state[IN_POSITION] == 1.0:
            reason, price = protective_exit_compiled(
                open_[t], high[t], low[t], state[ENTRY_FILL], state[PEAK],
                stop_loss, take_profit, trailing_stop,
            )  # fmt: skip
            if reason != NO_EXIT:
                _close_position(
                    state, t, price * (1.0 - slippage), fee, reason,
                    t_entry_idx, t_exit_idx, t_entry_price, t_exit_price, t_qty, t_pnl,
                    t_fee, t_reason,
                )  # fmt: skip
            else:
                state[PEAK] = next_peak_compiled(state[PEAK], high[t])
        # 3. mark to the close
        if state[IN_POSITION] == 1.0:
            equity[t] = state[CASH] + state[QTY] * close[t]
            state[EXPOSED] += 1.0
        else:
            equity[t] = state[CASH]


@njit(cache=True, nogil=True)
def close_at_end(
    close: np.ndarray,
    fee: float,
    slippage: float,
    state: np.ndarray,
    equity: np.ndarray,
    t_entry_idx: np.ndarray,
    t_exit_idx: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> None:
    """Close a still-open position at the last close (exit_reason "end")."""
    n = close.shape[0]
    if n > 0 and state[IN_POSITION] == 1.0:
        _close_position(
            state, n - 1, close[n - 1] * (1.0 - slippage), fee, END,
            t_entry_idx, t_exit_idx, t_entry_price, t_exit_price, t_qty, t_pnl, t_fee, t_reason,
        )  # fmt: skip
        equity[n - 1] = state[CASH]


@njit(cache=True, nogil=True)
def _max_drawdown(equity: np.ndarray, initial: float) -> float:
    peak = initial
    trough_ratio = 1.0  # lowest value / peak seen so far: one division per new trough only
    for t in range(equity.shape[0]):
        value = equity[t]
        if value > peak:
            peak = value
        elif value < peak * trough_ratio:
            trough_ratio = value / peak
    return 1.0 - trough_ratio


# Reassociating the sums lets LLVM vectorise this branch-free loop (the sums differ from a
# left-to-right sum in the last bits only; NaN/inf semantics are kept).
@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _return_sums(equity: np.ndarray, initial: float) -> tuple[float, float, float]:
    total = 0.0
    total_sq = 0.0
    down = 0.0
    previous = initial
    for t in range(equity.shape[0]):
        value = equity[t]
        r = value / previous - 1.0
        previous = value
        total += r
        total_sq += r * r
        negative = min(r, 0.0)
        down += negative * negative
    return total, total_sq, down


@njit(cache=True, nogil=True)
def equity_stats(equity: np.ndarray, initial: float) -> tuple[float, float, float, float, int]:
    """Max drawdown, mean and sample std of per-candle returns, mean squared downside, count.

    Returns are ``equity[t] / equity[t-1] - 1`` with ``equity[-1]`` = the initial capital
    (equity stays positive: long-only, at most all of it per trade).
    """
    count = equity.shape[0]
    max_dd = _max_drawdown(equity, initial)
    total, total_sq, down = _return_sums(equity, initial)
    mean = total / count if count > 0 else 0.0
    variance = (total_sq - count * mean * mean) / (count - 1) if count > 1 else 0.0
    std = np.sqrt(variance) if variance > 0.0 else 0.0
    downside = down / count if count > 0 else 0.0
    return max_dd, mean, std, downside, count


@njit(cache=True, nogil=True)
def check_candles(
    timestamp: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> tuple[int, int, int]:
    """(problem, candle, column): problem 0 ok, 1 a price is NaN/inf, 2 a price is not
    positive, 3 time does not increase; column 0..3 = open, high, low, close. One pass."""
    for t in range(close.shape[0]):
        for column in range(4):
            if column == 0:
                value = open_[t]
            elif column == 1:
                value = high[t]
            elif column == 2:
                value = low[t]
            else:
                value = close[t]
            if not np.isfinite(value):
                return 1, t, column
            if value <= 0.0:
                return 2, t, column
        if t > 0 and timestamp[t] <= timestamp[t - 1]:
            return 3, t, -1
    return 0, -1, -1
