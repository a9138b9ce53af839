"""Portfolio backtests (docs/trading.md, portfolio backtests): one strategy over a list of
pairs sharing one capital, at most ``max_open_positions`` positions at a time.

Each pair follows the single-pair rules of :mod:`shared.backtest.engine` on its own
candles (its signals from its own history, next-open fills, the protective exits of
``shared/exits.py``, fees and slippage); what the pairs share is the cash and the slots:

- **Time.** The pairs' candles are set on a common time index, the union of their
  timestamps. A pair with no candle at a step is not traded then: its signal acts at
  its own next candle's open, its protective exits wait for its next candle, and an open
  position in it is valued at its last close. A pair that starts later joins from its
  first candle (its indicators warm up on its own candles); a position in a pair whose
  candles end before the others' is sold at its last close (``exit_reason: "end"``).
- **Order within a step.** At the open, first every signal exit of the step (freeing cash
  and slots), then the entries **in the order of the pair list** (the list is the
  ranking: put the pairs you prefer first). An entry is skipped (and counted in
  ``entries_skipped``) when ``max_open_positions`` positions are open or the free cash is
  spent; the signal is not queued, a strategy that still signals on a later candle enters
  then. Then the protective exits inside the candle, then the mark to the close.
- **Stake.** ``stake_amount`` (quote currency) per entry, or ``position_size`` x equity,
  where equity is the free cash after the step's exits plus the open positions at their
  last close, taken once before the step's first entry (the entries of one step get the
  same stake). Either is capped at the free cash (a pair cannot spend what another holds);
  the quantity is ``stake / (fill x (1 + fee))``, the entry fee included, as for one pair.
  Cash under a billionth of the initial capital (floating-point residue of spending it
  all) buys nothing.

With one pair, a stake of ``position_size`` x equity and no cap, this is the single-pair
backtest, operation for operation.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from numba.typed import List as TypedList

from shared.backtest import portfolio_kernel as pk
from shared.backtest.engine import (
    BacktestInputError,
    BacktestResult,
    Costs,
    ProgressCallback,
    Trade,
    TradeArrays,
    checked_size,
    compute_metrics,
    timeframe_ms,
    validate_candles,
)
from shared.candles import Candles, IntArray
from shared.strategies.base import SignalArray, TradingStrategy

# the compiled loop, called with its state spread over many arrays
_kernel = cast("Callable[..., None]", pk.simulate_portfolio)
_order_events = cast(
    "Callable[..., tuple[IntArray, IntArray, IntArray, IntArray]]", pk.order_events
)
STEP_CHUNK = 65_536  # common steps per kernel call when reporting progress
DUST = 1e-9  # of the initial capital: cash below it buys nothing


@dataclass(frozen=True)
class PortfolioTrade(Trade):
    pair: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"pair": self.pair, **super().to_json()}


@dataclass
class PortfolioResult(BacktestResult):
    """A portfolio run: the whole portfolio's metrics, equity curve and trades (each with its
    pair), and each pair's metrics (``pair_metrics``, in pair-list order)."""

    pairs: list[str] | None = None
    trade_pair: npt.NDArray[np.int64] | None = None
    pair_metrics: dict[str, dict[str, float | int | None]] | None = None

    @property
    def trades(self) -> list[Trade]:
        names = self.pairs or []
        pair_of = self.trade_pair if self.trade_pair is not None else np.zeros(0, np.int64)
        return [
            PortfolioTrade(**vars(trade), pair=names[int(pair_of[i])])
            for i, trade in enumerate(super().trades)
        ]


@dataclass(frozen=True)
class _Timeline:
    steps: IntArray  # the common time index
    offsets: IntArray  # each pair's first step if its candles are a run of steps, else -1
    step_of: TypedList[IntArray]  # the step of each candle of a pair that is not a run


def _timeline(candles: Sequence[Candles]) -> _Timeline:
    """The union of the pairs' timestamps; cheap when they all share one."""
    steps = candles[0].timestamp
    aligned = True
    for c in candles[1:]:
        if not pk.same_stamps(c.timestamp, steps):
            steps = np.union1d(steps, c.timestamp)
            aligned = False
    offsets = np.zeros(len(candles), np.int64)
    none = np.zeros(0, np.int64)
    maps: list[IntArray] = [none]  # read only for pairs that are not a run of steps
    if not aligned:
        maps = [none] * len(candles)
        for p, c in enumerate(candles):
            off = int(np.searchsorted(steps, c.timestamp[0]))
            if not pk.same_stamps(steps[off : off + len(c)], c.timestamp):
                off = -1
                maps[p] = np.searchsorted(steps, c.timestamp).astype(np.int64)
            offsets[p] = off
    return _Timeline(np.ascontiguousarray(steps, dtype=np.int64), offsets, _typed(maps))


def _typed(arrays: Sequence[np.ndarray]) -> TypedList[np.ndarray]:
    out: TypedList[np.ndarray] = TypedList()
    for a in arrays:
        out.append(a)
    return out


def _check_pairs(candles: Mapping[str, Candles], validate: bool) -> None:
    if not candles:
        raise BacktestInputError("a portfolio backtest needs at least one pair")
    frames: dict[str, int] = {}
    for pair, c in candles.items():
        if validate:
            try:
                validate_candles(c)
            except BacktestInputError as exc:
                raise BacktestInputError(f"{pair}: {exc}") from None
        frames[pair] = timeframe_ms(c.timestamp)
    if len(set(frames.values())) > 1:
        spacing = ", ".join(f"{pair} {ms // 1000} s" for pair, ms in frames.items())
        raise BacktestInputError(
            f"the pairs' candles must share one timeframe; their spacing differs ({spacing})"
        )


def _pair_metrics(
    result_pnl: np.ndarray,
    cost_basis: np.ndarray,
    fees: np.ndarray,
    *,
    n_candles: int,
    exposed: int,
    skipped: int,
    steps: int,
    capital: float,
) -> dict[str, float | int | None]:
    n_trades = int(result_pnl.shape[0])
    wins = result_pnl[result_pnl > 0]
    gross_loss = float(-result_pnl[result_pnl < 0].sum())
    pnl = float(result_pnl.sum())
    return {
        "pnl": pnl,
        "total_return": pnl / capital,
        "n_trades": n_trades,
        "win_rate": wins.shape[0] / n_trades if n_trades else None,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else None,
        "avg_trade_return": float(np.mean(result_pnl / cost_basis)) if n_trades else None,
        "fees": float(fees.sum()),
        "exposure": exposed / steps if steps else 0.0,
        "entries_skipped": skipped,
        "candles": n_candles,
    }


def simulate_portfolio(
    candles: Mapping[str, Candles],
    signals: Mapping[str, SignalArray],
    *,
    initial_capital: float | Decimal | str = 10_000,
    fee: float = 0.001,
    slippage: float = 0.0,
    max_open_positions: int | None = None,
    position_size: float | None = None,
    stake_amount: float | Decimal | str | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    progress: ProgressCallback | None = None,
    validate: bool = True,
) -> PortfolioResult:
    """Run the portfolio fill loop over precomputed signals (see the module docstring).

    ``max_open_positions`` defaults to the number of pairs; without ``stake_amount``,
    ``position_size`` defaults to ``1 / max_open_positions`` of equity.
    """
    names = list(candles)
    _check_pairs(candles, validate)
    if set(signals) != set(names):
        raise BacktestInputError("signals must be given for exactly the pairs of the candles")
    costs = Costs.checked(initial_capital, fee, slippage, stop_loss, take_profit, trailing_stop)
    max_open = len(names) if max_open_positions is None else int(max_open_positions)
    if not 1 <= max_open <= len(names):
        raise BacktestInputError(
            f"max_open_positions must be from 1 to the number of pairs ({len(names)})"
        )
    stake = 0.0
    if stake_amount is not None:
        if position_size is not None:
            raise BacktestInputError("give stake_amount or position_size, not both")
        stake = float(stake_amount)
        if not (math.isfinite(stake) and stake > 0):
            raise BacktestInputError("stake_amount must be a positive amount")
        size = 0.0
    else:
        size = checked_size(1.0 / max_open if position_size is None else position_size)
    series = [candles[name] for name in names]
    sigs = []
    for name, c in zip(names, series, strict=True):
        sig = np.ascontiguousarray(signals[name], dtype=np.int8)
        if sig.shape[0] != len(c):
            raise BacktestInputError(f"{name}: {sig.shape[0]} signals for {len(c)} candles")
        sigs.append(sig)

    timeline = _timeline(series)
    ev_step, ev_pair, ev_kind, ev_index = _order_events(
        timeline.steps.shape[0], _typed(sigs), timeline.offsets, timeline.step_of
    )
    n_steps, n_pairs = timeline.steps.shape[0], len(names)
    cap = int(np.count_nonzero(ev_kind == pk.EV_ENTER)) + 1
    trade_cols = (
        np.empty(cap, np.int64),  # pair
        np.empty(cap, np.int64),  # entry step
        np.empty(cap, np.int64),  # exit step
        np.empty(cap, np.float64),
        np.empty(cap, np.float64),
        np.empty(cap, np.float64),
        np.empty(cap, np.float64),
        np.empty(cap, np.float64),
        np.empty(cap, np.int8),
    )
    fstate = np.zeros(pk.FSTATE_SIZE, np.float64)
    fstate[pk.CASH] = costs.capital
    istate = np.zeros(pk.ISTATE_SIZE, np.int64)
    floats = [np.zeros(n_pairs, np.float64) for _ in range(5)]  # qty, fill, fee, peak, mark
    ints = [np.zeros(n_pairs, np.int64) for _ in range(3)]  # entry step, cursor, live step
    ints[2][:] = -1
    slots = np.zeros(max_open, np.int64)
    exposed_pair = np.zeros(n_pairs, np.int64)
    skipped_pair = np.zeros(n_pairs, np.int64)
    equity = np.empty(n_steps, np.float64)
    opens, closes = _typed([c.open for c in series]), _typed([c.close for c in series])
    stops = costs.stop_loss or costs.take_profit or costs.trailing_stop
    highs = _typed([c.high for c in series]) if stops else opens  # read only by the stops
    lows = _typed([c.low for c in series]) if stops else opens
    last_index = np.array([len(c) - 1 for c in series], np.int64)
    step = n_steps if progress is None else STEP_CHUNK
    for start in range(0, n_steps, step):
        stop = min(n_steps, start + step)
        _kernel(
            opens, highs, lows, closes, timeline.step_of, timeline.offsets, last_index,
            ev_step, ev_pair, ev_kind, ev_index, start, stop, costs.fee, costs.slippage, size,
            stake, max_open, DUST * costs.capital,
            costs.stop_loss, costs.take_profit, costs.trailing_stop, fstate, istate,
            *floats, *ints, slots, exposed_pair, skipped_pair, equity, *trade_cols,
        )  # fmt: skip
        if progress is not None:
            progress(stop / n_steps)
    k = int(istate[pk.N_TRADES])
    pair_col = trade_cols[0][:k]
    trades = TradeArrays(
        entry_index=trade_cols[1][:k],
        exit_index=trade_cols[2][:k],
        entry_price=trade_cols[3][:k],
        exit_price=trade_cols[4][:k],
        quantity=trade_cols[5][:k],
        pnl=trade_cols[6][:k],
        fee=trade_cols[7][:k],
        reason=trade_cols[8][:k],
    )
    metrics = compute_metrics(
        timestamps=timeline.steps,
        equity=equity,
        pnl=trades.pnl,
        exposed_candles=int(istate[pk.EXPOSED]),
        initial_capital=costs.capital,
    )
    metrics["entries_skipped"] = int(skipped_pair.sum())
    cost_basis = trades.quantity * trades.entry_price * (1.0 + costs.fee)
    # Each pair's trades in closing order: one stable sort, then one slice per pair.
    by_pair = np.argsort(pair_col, kind="stable")
    bounds = np.searchsorted(pair_col[by_pair], np.arange(n_pairs + 1))
    pnl_of, basis_of, fee_of = trades.pnl[by_pair], cost_basis[by_pair], trades.fee[by_pair]
    pair_metrics = {}
    for p, name in enumerate(names):
        mine = slice(int(bounds[p]), int(bounds[p + 1]))
        pair_metrics[name] = _pair_metrics(
            pnl_of[mine],
            basis_of[mine],
            fee_of[mine],
            n_candles=len(series[p]),
            exposed=int(exposed_pair[p]),
            skipped=int(skipped_pair[p]),
            steps=n_steps,
            capital=costs.capital,
        )
    settings = {
        **costs.settings(),
        "pairs": names,
        "max_open_positions": max_open,
        "position_size": size or None,
        "stake_amount": stake or None,
        "candles": n_steps,
        "start_ms": int(timeline.steps[0]),
        "end_ms": int(timeline.steps[-1]),
    }
    return PortfolioResult(
        metrics,
        timeline.steps,
        equity,
        trades,
        settings,
        pairs=names,
        trade_pair=pair_col,
        pair_metrics=pair_metrics,
    )


def portfolio_signals(
    strategy: TradingStrategy,
    candles: Mapping[str, Candles],
    *,
    workers: int | None = None,
    validate: bool = False,
) -> list[SignalArray]:
    """The strategy's signals on each pair (candles checked first with ``validate``), on up
    to ``workers`` threads (the indicator libraries and the compiled checks release the
    GIL). Each thread has its own copy of the strategy, so one that keeps state between
    calls cannot mix pairs up."""
    names = list(candles)
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    count = max(1, min(count, len(names)))
    try:
        copies = [strategy] + [copy.deepcopy(strategy) for _ in range(count - 1)]
    except (TypeError, copy.Error):  # a strategy holding what cannot be copied: one thread
        count, copies = 1, [strategy]
    out: list[SignalArray | None] = [None] * len(names)

    def run(worker: int) -> None:
        for i in range(worker, len(names), count):
            if validate:
                try:
                    validate_candles(candles[names[i]])
                except BacktestInputError as exc:
                    raise BacktestInputError(f"{names[i]}: {exc}") from None
            out[i] = copies[worker].signals(candles[names[i]])

    if count == 1:
        run(0)
    else:
        with ThreadPoolExecutor(count, thread_name_prefix="signals") as pool:
            list(pool.map(run, range(count)))
    return [s for s in out if s is not None]


def run_portfolio(
    strategy: TradingStrategy,
    candles: Mapping[str, Candles],
    initial_capital: float | Decimal | str = 10_000,
    fee: float = 0.001,
    slippage: float = 0.0,
    *,
    max_open_positions: int | None = None,
    position_size: float | None = None,
    stake_amount: float | Decimal | str | None = None,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    progress: ProgressCallback | None = None,
    validate: bool = True,
    workers: int | None = None,
) -> PortfolioResult:
    """Backtest ``strategy`` over the pairs of ``candles`` (in their order: the entry
    ranking) from one capital; stops default to the strategy's own."""
    names = list(candles)
    if not candles:
        raise BacktestInputError("a portfolio backtest needs at least one pair")
    if progress is not None:
        progress(0.0)
    signals = portfolio_signals(strategy, candles, workers=workers, validate=validate)
    if progress is not None:
        progress(0.3)
    inner: Callable[[float], None] | None = (
        None if progress is None else (lambda f: progress(0.3 + 0.7 * f))
    )
    result = simulate_portfolio(
        candles,
        dict(zip(names, signals, strict=True)),
        initial_capital=initial_capital,
        fee=fee,
        slippage=slippage,
        max_open_positions=max_open_positions,
        position_size=position_size,
        stake_amount=stake_amount,
        stop_loss=stop_loss if stop_loss is not None else strategy.stop_loss(),
        take_profit=take_profit if take_profit is not None else strategy.take_profit(),
        trailing_stop=trailing_stop if trailing_stop is not None else strategy.trailing_stop(),
        progress=inner,
        validate=False,
    )
    result.settings["strategy"] = strategy.name
    result.settings["params"] = strategy.params.model_dump(mode="json")
    return result
