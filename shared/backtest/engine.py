"""The backtest engine (docs/trading.md, backtests): exact semantics, compiled fill loop.

Semantics, in the order they apply to each candle ``t``:

1. **Orders at the open.** The strategy's signal on candle ``t-1`` (computed on its close)
   acts at candle ``t``'s open. ENTER_LONG while flat buys at
   ``fill = open[t] * (1 + slippage)`` a quantity
   ``equity * position_size / (fill * (1 + fee))`` and pays ``fee * quantity * fill``;
   EXIT_LONG while long sells at ``open[t] * (1 - slippage)`` and pays ``fee`` on the
   proceeds. ENTER while long and EXIT while flat do nothing. The signal on the last
   candle has no next open and is ignored.
2. **Protective exits inside the candle** (also on the candle of entry), by the rule in
   :mod:`shared.exits` that bots follow too. The stop level is
   ``entry_fill * (1 - stop_loss)``, raised to ``peak * (1 - trailing_stop)`` when that is
   higher, where ``peak`` is the highest high since entry *up to the previous candle* (the
   entry fill on the entry candle). If ``low[t] <= stop level`` the position is sold at
   ``min(open[t], stop level)`` (a gap through the stop fills at the open); otherwise if
   ``high[t] >= entry_fill * (1 + take_profit)`` it is sold at ``max(open[t], target)``.
   **When a candle touches both, the stop is assumed to come first** (the conservative
   reading: a candle's high/low cannot tell the order). Both exits pay slippage and fee.
3. **Mark to the close.** Equity is ``cash + quantity * close[t]``.

A position still open after the last candle is sold at the last close (slippage and fee
paid, ``exit_reason: "end"``), and the last equity point is that realised value.

Metrics: ``total_return`` = final / initial - 1; ``cagr`` over the span
``last - first timestamp + one timeframe``; ``max_drawdown`` as a positive fraction of the
running peak (starting at the initial capital); ``sharpe`` = mean / sample std of the
per-candle returns x sqrt(candles per year) and ``sortino`` = mean / sqrt(mean of squared
negative returns) x the same factor (risk-free rate 0, a year of 365.25 days since crypto
trades every day); ``win_rate`` = share of trades with pnl > 0; ``profit_factor`` = gross
profit / gross loss; ``exposure`` = share of candles closed while holding a position.
A ratio with a zero denominator is ``None`` (JSON ``null``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from shared import exits
from shared.backtest import kernel
from shared.candles import Candles, FloatArray, IntArray
from shared.strategies.base import SignalArray, TradingStrategy

EXIT_REASONS = {kernel.SIGNAL: "signal", **exits.REASONS, kernel.END: "end"}
MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
CHUNK = 262_144  # candles per kernel call when reporting progress

ProgressCallback = Callable[[float], None]


class BacktestInputError(ValueError):
    """Inputs the engine refuses (the message says what to fix)."""


@dataclass(frozen=True)
class Trade:
    entry_at: datetime
    exit_at: datetime
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    fee: float
    exit_reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_at": self.entry_at.isoformat().replace("+00:00", "Z"),
            "exit_at": self.exit_at.isoformat().replace("+00:00", "Z"),
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "quantity": self.quantity,
            "pnl": self.pnl,
            "fee": self.fee,
            "exit_reason": self.exit_reason,
        }


@dataclass(frozen=True)
class TradeArrays:
    """The trade list as columns (cheap for a million candles; :attr:`rows` on demand)."""

    entry_index: npt.NDArray[np.int64]
    exit_index: npt.NDArray[np.int64]
    entry_price: FloatArray
    exit_price: FloatArray
    quantity: FloatArray
    pnl: FloatArray
    fee: FloatArray
    reason: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.pnl.shape[0])


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass
class BacktestResult:
    """Metrics, trades and the equity curve of one run, plus what reproduces it."""

    metrics: dict[str, float | int | None]
    timestamps: IntArray
    equity: FloatArray
    trade_arrays: TradeArrays
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def final_equity(self) -> float:
        return float(self.metrics["final_equity"] or 0.0)

    @property
    def trades(self) -> list[Trade]:
        ta = self.trade_arrays
        return [
            Trade(
                entry_at=_utc(int(self.timestamps[ta.entry_index[i]])),
                exit_at=_utc(int(self.timestamps[ta.exit_index[i]])),
                entry_price=float(ta.entry_price[i]),
                exit_price=float(ta.exit_price[i]),
                quantity=float(ta.quantity[i]),
                pnl=float(ta.pnl[i]),
                fee=float(ta.fee[i]),
                exit_reason=EXIT_REASONS[int(ta.reason[i])],
            )
            for i in range(len(ta))
        ]

    def iter_trades(self) -> Iterator[Trade]:
        yield from self.trades

    def drawdown(self) -> FloatArray:
        """Drawdown per candle as a positive fraction of the running peak."""
        initial = float(self.settings.get("initial_capital", self.equity[0]))
        peak = np.maximum.accumulate(np.maximum(self.equity, initial))
        out: FloatArray = 1.0 - self.equity / peak
        return out

    def equity_points(self, max_points: int | None = None) -> list[list[float]]:
        """``[[ts_ms, equity], ...]``, evenly thinned to ``max_points`` (last point kept)."""
        n = self.equity.shape[0]
        if n == 0:
            return []
        index = np.arange(n)
        if max_points is not None and n > max_points:
            index = np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(np.int64), n - 1])
        return [[int(self.timestamps[i]), float(self.equity[i])] for i in index]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def timeframe_ms(timestamps: IntArray) -> int:
    """The candle spacing: the median of the first gaps (robust to a few missing candles)."""
    if timestamps.shape[0] < 2:
        return 60_000
    gaps = np.diff(timestamps[: min(timestamps.shape[0], 1001)])
    return max(int(np.median(gaps)), 1)


def compute_metrics(
    *,
    timestamps: IntArray,
    equity: FloatArray,
    pnl: FloatArray,
    exposed_candles: int,
    initial_capital: float,
    frame_ms: int | None = None,
) -> dict[str, float | int | None]:
    """The metrics (docs/trading.md, backtests) from an equity curve and the trades' pnl."""
    n = equity.shape[0]
    final = float(equity[-1]) if n else initial_capital
    frame = frame_ms or timeframe_ms(timestamps)
    max_dd, mean, std, downside, count = kernel.equity_stats(equity, initial_capital)
    per_year = MS_PER_YEAR / frame
    years = (float(timestamps[-1] - timestamps[0]) + frame) / MS_PER_YEAR if n else 0.0
    growth = final / initial_capital
    cagr = growth ** (1.0 / years) - 1.0 if years > 0 and growth > 0 else None
    sharpe = mean / std * math.sqrt(per_year) if std > 0 and count > 1 else None
    sortino = mean / math.sqrt(downside) * math.sqrt(per_year) if downside > 0 else None
    n_trades = int(pnl.shape[0])
    wins = pnl[pnl > 0]
    losses = pnl[pnl < 0]
    gross_loss = float(-losses.sum())
    return {
        "final_equity": final,
        "total_return": growth - 1.0,
        "cagr": _finite(cagr) if cagr is not None else None,
        "max_drawdown": float(max_dd),
        "sharpe": _finite(sharpe) if sharpe is not None else None,
        "sortino": _finite(sortino) if sortino is not None else None,
        "win_rate": wins.shape[0] / n_trades if n_trades else None,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else None,
        "n_trades": n_trades,
        "exposure": exposed_candles / n if n else 0.0,
    }


def _fraction(name: str, value: float | None, *, upper: float = 1.0) -> float:
    if value is None:
        return 0.0
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value < upper):
        raise BacktestInputError(f"{name} must be a fraction from 0 up to {upper}, got {value}")
    return value


def checked_size(position_size: float) -> float:
    size = float(position_size)
    if not (math.isfinite(size) and 0 < size <= 1):
        raise BacktestInputError("position_size must be a fraction above 0 and at most 1")
    return size


@dataclass(frozen=True)
class Costs:
    """The checked money settings every backtest shares (stops of 0 mean "none")."""

    capital: float
    fee: float
    slippage: float
    stop_loss: float
    take_profit: float
    trailing_stop: float

    @classmethod
    def checked(
        cls,
        initial_capital: float | Decimal | str,
        fee: float,
        slippage: float,
        stop_loss: float | None,
        take_profit: float | None,
        trailing_stop: float | None,
    ) -> Costs:
        capital = float(initial_capital)
        if not (math.isfinite(capital) and capital > 0):
            raise BacktestInputError("initial_capital must be a positive amount")
        return cls(
            capital,
            _fraction("fee", fee, upper=0.5),
            _fraction("slippage", slippage, upper=0.5),
            _fraction("stop_loss", stop_loss),
            _fraction("take_profit", take_profit, upper=100.0),
            _fraction("trailing_stop", trailing_stop),
        )

    def settings(self) -> dict[str, Any]:
        return {
            "initial_capital": self.capital,
            "fee": self.fee,
            "slippage": self.slippage,
            "stop_loss": self.stop_loss or None,
            "take_profit": self.take_profit or None,
            "trailing_stop": self.trailing_stop or None,
        }


def validate_candles(candles: Candles) -> None:
    """Refuse what would make a backtest meaningless: non-finite or non-positive prices,
    time that does not strictly increase."""
    if len(candles) < 2:
        raise BacktestInputError("a backtest needs at least 2 candles")
    problem, index, column = kernel.check_candles(
        candles.timestamp, candles.open, candles.high, candles.low, candles.close
    )
    name = ("open", "high", "low", "close")[column] if column >= 0 else ""
    if problem == 1:
        raise BacktestInputError(f"{name} has NaN or infinite values (candle {index})")
    if problem == 2:
        raise BacktestInputError(f"{name} must be positive (candle {index})")
    if problem == 3:
        raise BacktestInputError(
            f"candle timestamps must be strictly increasing (candle {index} is not after "
            "the one before)"
        )


def simulate_signals(
    candles: Candles,
    signals: SignalArray,
    *,
    initial_capital: float | Decimal | str = 10_000,
    fee: float = 0.001,
    slippage: float = 0.0,
    position_size: float = 1.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    progress: ProgressCallback | None = None,
    frame_ms: int | None = None,
) -> BacktestResult:
    """Run the fill loop over precomputed signals (see the module docstring)."""
    costs = Costs.checked(initial_capital, fee, slippage, stop_loss, take_profit, trailing_stop)
    capital, fee_f, slip_f = costs.capital, costs.fee, costs.slippage
    sl, tp, trail = costs.stop_loss, costs.take_profit, costs.trailing_stop
    size = checked_size(position_size)
    n = len(candles)
    signals = np.ascontiguousarray(signals, dtype=np.int8)
    if signals.shape[0] != n:
        raise BacktestInputError(f"{signals.shape[0]} signals for {n} candles")

    state = np.zeros(kernel.STATE_SIZE, dtype=np.float64)
    state[kernel.CASH] = capital
    equity = np.empty(n, dtype=np.float64)
    cap = n + 1  # at most one trade per candle (np.empty does not touch the pages)
    cols = (
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.int64),
        np.empty(cap, dtype=np.float64),
        np.empty(cap, dtype=np.float64),
        np.empty(cap, dtype=np.float64),
        np.empty(cap, dtype=np.float64),
        np.empty(cap, dtype=np.float64),
        np.empty(cap, dtype=np.int8),
    )
    o, h, lo, c = candles.open, candles.high, candles.low, candles.close
    step = n if progress is None else CHUNK
    for start in range(0, n, step):
        stop = min(n, start + step)
        kernel.simulate(
            o, h, lo, c, signals, start, stop, fee_f, slip_f, size, sl, tp, trail, state,
            equity, *cols,
        )  # fmt: skip
        if progress is not None:
            progress(stop / n)
    kernel.close_at_end(c, fee_f, slip_f, state, equity, *cols)
    k = int(state[kernel.N_TRADES])
    trades = TradeArrays(
        entry_index=cols[0][:k],
        exit_index=cols[1][:k],
        entry_price=cols[2][:k],
        exit_price=cols[3][:k],
        quantity=cols[4][:k],
        pnl=cols[5][:k],
        fee=cols[6][:k],
        reason=cols[7][:k],
    )
    metrics = compute_metrics(
        timestamps=candles.timestamp,
        equity=equity,
        pnl=trades.pnl,
        exposed_candles=int(state[kernel.EXPOSED]),
        initial_capital=capital,
        frame_ms=frame_ms,
    )
    settings = {
        **costs.settings(),
        "position_size": size,
        "candles": n,
        "start_ms": int(candles.timestamp[0]) if n else None,
        "end_ms": int(candles.timestamp[-1]) if n else None,
    }
    return BacktestResult(metrics, candles.timestamp, equity, trades, settings)


def run_backtest(
    strategy: TradingStrategy,
    candles: Candles,
    initial_capital: float | Decimal | str = 10_000,
    fee: float = 0.001,
    slippage: float = 0.0,
    position_size: float = 1.0,
    *,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
    progress: ProgressCallback | None = None,
    validate: bool = True,
) -> BacktestResult:
    """Backtest ``strategy`` on ``candles``; stops default to the strategy's own."""
    if validate:
        validate_candles(candles)
    if progress is not None:
        progress(0.0)
    signals = strategy.signals(candles)
    if progress is not None:
        progress(0.2)
    inner = None if progress is None else (lambda f: progress(0.2 + 0.8 * f))
    result = simulate_signals(
        candles,
        signals,
        initial_capital=initial_capital,
        fee=fee,
        slippage=slippage,
        position_size=position_size,
        stop_loss=stop_loss if stop_loss is not None else strategy.stop_loss(),
        take_profit=take_profit if take_profit is not None else strategy.take_profit(),
        trailing_stop=trailing_stop if trailing_stop is not None else strategy.trailing_stop(),
        progress=inner,
    )
    result.settings["strategy"] = strategy.name
    result.settings["params"] = strategy.params.model_dump(mode="json")
    return result


class BacktestEngine:
    """The original design's name: ``BacktestEngine().run_backtest(strategy, data, capital)``."""

    def __init__(
        self, *, fee: float = 0.001, slippage: float = 0.0, position_size: float = 1.0
    ) -> None:
        self.fee = fee
        self.slippage = slippage
        self.position_size = position_size

    def run_backtest(
        self,
        strategy: TradingStrategy,
        data: Candles,
        initial_capital: float | Decimal | str = 10_000,
        **options: Any,
    ) -> BacktestResult:
        return run_backtest(
            strategy,
            data,
            initial_capital,
            fee=options.pop("fee", self.fee),
            slippage=options.pop("slippage", self.slippage),
            position_size=options.pop("position_size", self.position_size),
            **options,
        )
