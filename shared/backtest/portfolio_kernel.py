"""The compiled fill loop of portfolio backtests (numba, cached on disk).

Several pairs share one cash balance and at most ``max_open`` positions. The loop walks
the common time index once; at each step it touches only the pairs that have an order
event (a signal acting at this step's open) or an open position, so its cost grows with
the signals and the open positions, not with the number of pairs times candles. The
semantics are in :mod:`shared.backtest.portfolio` and docs/trading.md (portfolio
backtests); one pair gives, operation for operation, the single-pair loop of
:mod:`shared.backtest.kernel`.

State between calls (so callers can run it in chunks and report progress) lives in small
arrays: ``fstate`` (cash), ``istate`` (trades, event pointer, open count, exposed steps),
and the per-pair position arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from shared.backtest.kernel import END, SIGNAL, book_sale
from shared.exits import NO_EXIT, next_peak_compiled, protective_exit_compiled

# fstate / istate indices
CASH = 0
FSTATE_SIZE = 1
N_TRADES, EV_PTR, N_OPEN, EXPOSED = range(4)
ISTATE_SIZE = 4

# event kinds, in the order they act within one step: exits before entries
EV_EXIT, EV_ENTER = 0, 1


@njit(cache=True, nogil=True, inline="always")
def _close(
    p: int,
    t: int,
    fill: float,
    fee: float,
    reason: int,
    fstate: np.ndarray,
    istate: np.ndarray,
    qty: np.ndarray,
    entry_fill: np.ndarray,
    entry_fee: np.ndarray,
    entry_step: np.ndarray,
    slots: np.ndarray,
    t_pair: np.ndarray,
    t_entry: np.ndarray,
    t_exit: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> None:
    """Sell pair ``p``'s whole position at ``fill`` and free its slot."""
    k = istate[N_TRADES]
    t_pair[k] = p
    fstate[CASH] += book_sale(
        k, entry_step[p], t, entry_fill[p], entry_fee[p], qty[p], fill, fee, reason, t_entry,
        t_exit, t_entry_price, t_exit_price, t_qty, t_pnl, t_fee, t_reason,
    )  # fmt: skip
    istate[N_TRADES] = k + 1
    qty[p] = 0.0
    # drop p from the slots, keeping the others in the order they were opened
    n_open = istate[N_OPEN]
    s = 0
    while slots[s] != p:
        s += 1
    while s < n_open - 1:
        slots[s] = slots[s + 1]
        s += 1
    istate[N_OPEN] = n_open - 1


@njit(cache=True, nogil=True)
def simulate_portfolio(
    opens: list[np.ndarray],
    highs: list[np.ndarray],
    lows: list[np.ndarray],
    closes: list[np.ndarray],
    step_of: list[np.ndarray],
    offset: np.ndarray,
    last_index: np.ndarray,
    ev_step: np.ndarray,
    ev_pair: np.ndarray,
    ev_kind: np.ndarray,
    ev_index: np.ndarray,
    start: int,
    stop: int,
    fee: float,
    slippage: float,
    size: float,
    stake_amount: float,
    max_open: int,
    dust: float,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    fstate: np.ndarray,
    istate: np.ndarray,
    qty: np.ndarray,
    entry_fill: np.ndarray,
    entry_fee: np.ndarray,
    peak: np.ndarray,
    mark: np.ndarray,
    entry_step: np.ndarray,
    cursor: np.ndarray,
    live_step: np.ndarray,
    slots: np.ndarray,
    exposed_pair: np.ndarray,
    skipped_pair: np.ndarray,
    equity: np.ndarray,
    t_pair: np.ndarray,
    t_entry: np.ndarray,
    t_exit: np.ndarray,
    t_entry_price: np.ndarray,
    t_exit_price: np.ndarray,
    t_qty: np.ndarray,
    t_pnl: np.ndarray,
    t_fee: np.ndarray,
    t_reason: np.ndarray,
) -> None:
    """Steps ``start .. stop-1`` of the common index. ``stake_amount`` > 0 buys that much
    per entry, else ``size`` x equity; stops of 0 mean "none"."""
    n_events = ev_step.shape[0]
    stops_on = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0
    for t in range(start, stop):
        # 1. the open positions' pairs step onto their candle at t, if they have one
        for s in range(istate[N_OPEN]):
            p = slots[s]
            c = cursor[p]
            if c < last_index[p]:
                if offset[p] >= 0:  # the pair's candles are a run of steps: no lookup
                    if t - offset[p] == c + 1:
                        cursor[p] = c + 1
                        live_step[p] = t
                elif step_of[p][c + 1] == t:
                    cursor[p] = c + 1
                    live_step[p] = t
        # 2. orders at the open: this step's events, exits first, then entries in pair order
        e = istate[EV_PTR]
        step_value = -1.0  # equity for this step's stakes, taken at its first entry
        while e < n_events and ev_step[e] == t:
            p = ev_pair[e]
            i = ev_index[e]
            if ev_kind[e] == EV_EXIT:
                if qty[p] > 0.0:
                    _close(
                        p, t, opens[p][i] * (1.0 - slippage), fee, SIGNAL, fstate, istate,
                        qty, entry_fill, entry_fee, entry_step, slots, t_pair, t_entry,
                        t_exit, t_entry_price, t_exit_price, t_qty, t_pnl, t_fee, t_reason,
                    )  # fmt: skip
            elif qty[p] == 0.0:
                cash = fstate[CASH]
                if istate[N_OPEN] >= max_open:
                    skipped_pair[p] += 1
                else:
                    if stake_amount > 0.0:
                        stake = stake_amount
                    else:
                        if step_value < 0.0:  # after the exits, before any entry
                            step_value = cash
                            for s in range(istate[N_OPEN]):
                                step_value += qty[slots[s]] * mark[slots[s]]
                        stake = step_value * size
                    if stake > cash:
                        stake = cash
                    if stake <= dust:
                        skipped_pair[p] += 1
                    else:
                        fill = opens[p][i] * (1.0 + slippage)
                        q = stake / (fill * (1.0 + fee))
                        cost = q * fill
                        fee_paid = cost * fee
                        fstate[CASH] = cash - (cost + fee_paid)
                        qty[p] = q
                        entry_fill[p] = fill
                        entry_fee[p] = fee_paid
                        peak[p] = fill
                        entry_step[p] = t
                        cursor[p] = i
                        live_step[p] = t
                        slots[istate[N_OPEN]] = p
                        istate[N_OPEN] += 1
            e += 1
        istate[EV_PTR] = e
        # 3. protective exits inside the candle (shared/exits.py), for pairs with a candle
        if stops_on:
            s = 0
            while s < istate[N_OPEN]:
                p = slots[s]
                if live_step[p] == t:
                    c = cursor[p]
                    reason, price = protective_exit_compiled(
                        opens[p][c], highs[p][c], lows[p][c], entry_fill[p], peak[p],
                        stop_loss, take_profit, trailing_stop,
                    )  # fmt: skip
                    if reason != NO_EXIT:
                        _close(
                            p, t, price * (1.0 - slippage), fee, reason, fstate, istate, qty,
                            entry_fill, entry_fee, entry_step, slots, t_pair, t_entry, t_exit,
                            t_entry_price, t_exit_price, t_qty, t_pnl, t_fee, t_reason,
                        )  # fmt: skip
                        continue  # slot s now holds the next position
                    peak[p] = next_peak_compiled(peak[p], highs[p][c])
                s += 1
        # 4. mark to the close; a pair at its last candle closes there ("end")
        n_open = istate[N_OPEN]
        if n_open > 0:
            istate[EXPOSED] += 1
        s = 0
        while s < istate[N_OPEN]:
            p = slots[s]
            exposed_pair[p] += 1
            c = cursor[p]
            mark[p] = closes[p][c]
            if live_step[p] == t and c == last_index[p]:
                _close(
                    p, t, mark[p] * (1.0 - slippage), fee, END, fstate, istate, qty,
                    entry_fill, entry_fee, entry_step, slots, t_pair, t_entry, t_exit,
                    t_entry_price, t_exit_price, t_qty, t_pnl, t_fee, t_reason,
                )  # fmt: skip
                continue
            s += 1
        value = fstate[CASH]
        for s in range(istate[N_OPEN]):
            p = slots[s]
            value += qty[p] * mark[p]
        equity[t] = value


@njit(cache=True, nogil=True)
def same_stamps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two timestamp arrays are equal (no temporary array, stops at the first
    difference)."""
    if a.shape[0] != b.shape[0]:
        return False
    for i in range(a.shape[0]):
        if a[i] != b[i]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _visit_signals(
    p: int,
    sig: np.ndarray,
    offset: int,
    step_of: np.ndarray,
    counts: np.ndarray,
    fill: bool,
    ev_step: np.ndarray,
    ev_pair: np.ndarray,
    ev_kind: np.ndarray,
    ev_index: np.ndarray,
) -> None:
    """Count (``fill`` False) or place pair ``p``'s orders; the signal array is read eight
    candles at a time, most of it being HOLD."""
    n = sig.shape[0] - 1  # the last candle's signal has no next open
    words = n // 8
    packed = sig[: words * 8].view(np.uint64)
    k = 0
    i = 0
    while i < n:
        if i % 8 == 0 and k < words:
            if packed[k] == 0:
                k += 1
                i += 8
                continue
            k += 1
        s = sig[i]
        if s != 0:
            at = offset + i + 1 if offset >= 0 else step_of[i + 1]
            kind = EV_ENTER if s > 0 else EV_EXIT
            if fill:
                slot = counts[2 * at + kind]
                counts[2 * at + kind] = slot + 1
                ev_step[slot] = at
                ev_pair[slot] = p
                ev_kind[slot] = kind
                ev_index[slot] = i + 1
            else:
                counts[2 * at + kind + 1] += 1
        i += 1


@njit(cache=True, nogil=True)
def order_events(
    n_steps: int, signals: list[np.ndarray], offsets: np.ndarray, step_of: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every signal as an order at its pair's next open: ``(step, pair, kind, candle
    index)`` sorted by step, exits before entries, then by pair (a counting sort: the pairs
    are walked in list order, each in time order). A pair's candle ``i`` is at step
    ``offsets[p] + i``, or ``step_of[p][i]`` when its candles are not a run of steps."""
    counts = np.zeros(2 * n_steps + 1, np.int64)
    none = np.zeros(0, np.int64)
    for p in range(len(signals)):
        steps = step_of[p] if offsets[p] < 0 else none
        _visit_signals(p, signals[p], offsets[p], steps, counts, False, none, none, none, none)
    for k in range(1, counts.shape[0]):
        counts[k] += counts[k - 1]
    total = counts[-1]
    ev_step = np.empty(total, np.int64)
    ev_pair = np.empty(total, np.int64)
    ev_kind = np.empty(total, np.int64)
    ev_index = np.empty(total, np.int64)
    for p in range(len(signals)):
        steps = step_of[p] if offsets[p] < 0 else none
        _visit_signals(
            p, signals[p], offsets[p], steps, counts, True, ev_step, ev_pair, ev_kind, ev_index
        )
    return ev_step, ev_pair, ev_kind, ev_index
