"""Backtest engine speed, side by side with vectorbt and backtesting.py on the same rules,
and the same backtest end to end through the API.

Workload: SMA(10)/SMA(30) crossover, long only, signal on the close, fill at the next open,
fee 0.1 % per side, no slippage, all equity per trade, on 1-minute candles of the sim
exchange (BTC/USDT). A forced exit on the second-to-last candle makes every engine end
flat at the last open, so the final equities must agree.

API part (skip with ``--skip-api``): the market and analysis services as their own
processes (as `tradebot up` runs them) on a scratch database and Redis index;
``POST /analysis/backtests`` over ``--candles`` sim candles until the job is done, first
with none of them stored (the market service builds and stores them), then with all of
them stored, ``--api-runs`` times (the history is emptied before each run); beside it the
engine's own time on the same candles, and the latency of ``GET /market/ticker`` and of
the analysis service's ``/health`` while the job runs (and before, idle). Targets
(issue 14): under 5 s stored, under 15 s not yet stored. Each is printed with its stages:
the POST, then the job's own log line (queued, candles loaded, engine, result JSON,
result stored) and the GET of the done job. ``--profile`` records both services with
py-spy during the first run's jobs and prints where their time went.

Portfolio part (skip with ``--skip-portfolio``, or run it alone with ``--portfolio-only``):
``--pairs`` (100) sim pairs x ``--pair-candles`` (100,000) 1m candles, the same crossover,
at most ``--max-open`` (10) positions from one capital, a fixed stake of capital / max-open
per position (fee included), entries in pair-list order after the candle's exits, every
pair forced out at the last open; at a fee of 0.1 % (the crossover loses its capital to
fees within weeks, so later entries find no cash) and at no fee (the capital stays
invested and the slots bind), ``--portfolio-fees``. Candles per second of
``run_portfolio`` (signals and simulation) and of the simulation alone, side by side with
vectorbt's ``Portfolio.from_signals`` over the same pairs with ``cash_sharing=True``,
``group_by=True``, ``call_seq="auto"`` (sells first, then buys in column order) and the
slot cap in a ``signal_func_nb``, and both final equities (targets, issue 17: at least 20 M
candles/s and 5 times vectorbt, equal final equity).

    .venv/bin/python bench/backtest.py [--candles 1000000] [--reference-candles 100000]
        [--skip-cli] [--skip-api] [--api-runs 3] [--profile]
        [--skip-portfolio | --portfolio-only] [--pairs 100] [--pair-candles 100000]
        [--max-open 10]

The references come from the ``bench`` extra (``pip install -e '.[bench]'``); without them
the script says so and prints our own figures. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py draws a progress bar
sys.path.insert(0, str(ROOT))

from shared.backtest import (  # noqa: E402
    run_backtest,
    run_portfolio,
    simulate_portfolio,
    simulate_signals,
)
from shared.candles import Candles  # noqa: E402
from shared.strategies import create_strategy  # noqa: E402
from tradebot.backtest import _sim_module, sim_candles  # noqa: E402

START_MS = 1_672_531_200_000  # 2023-01-01
FEE, CAPITAL = 0.001, 10_000.0


def load(n: int) -> Candles:
    return sim_candles("BTC/USDT", "1m", START_MS, START_MS + n * 60_000)


def head(c: Candles, n: int) -> Candles:
    return c.head(n)


def our_signals(c: Candles) -> np.ndarray:
    signals = create_strategy("ma_crossover", {"fast": 10, "slow": 30}).signals(c)
    signals[-2] = -1  # everyone exits at the last open
    return signals


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times: list[float] = []
    out: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def ours(c: Candles, repeat: int) -> dict[str, float]:
    strategy = create_strategy("ma_crossover", {"fast": 10, "slow": 30})
    run_backtest(strategy, c, CAPITAL, FEE)  # warm (loads the numba cache)
    full, _ = timed(lambda: run_backtest(strategy, c, CAPITAL, FEE), repeat)
    stops, _ = timed(
        lambda: run_backtest(strategy, c, CAPITAL, FEE, stop_loss=0.01, take_profit=0.02,
                             trailing_stop=0.015),
        repeat,
    )  # fmt: skip
    final = simulate_signals(c, our_signals(c), initial_capital=CAPITAL, fee=FEE).final_equity
    return {"full": full, "stops": stops, "final": final}


def numpy_reference(c: Candles) -> float:
    """Plain numpy, vectorised: the same rules without stops (final equity only)."""
    signals = our_signals(c)
    signals[-1] = 0  # no next open to act on
    index = np.nonzero(signals)[0]
    values = signals[index]
    keep = np.r_[values[0] == 1, values[1:] != values[:-1]] & ~(
        (np.arange(values.size) == 0) & (values == -1)
    )
    index, values = index[keep], values[keep]
    entries = index[values == 1] + 1
    exits = index[values == -1] + 1
    exits = exits[: entries.size]
    growth = (c.open[exits] * (1 - FEE)) / (c.open[entries[: exits.size]] * (1 + FEE))
    return float(CAPITAL * np.prod(growth))


def vectorbt_run(c: Candles, repeat: int) -> tuple[float, float, float] | None:
    if importlib.util.find_spec("vectorbt") is None:
        return None
    t0 = time.perf_counter()
    import pandas as pd
    import vectorbt as vbt

    close = pd.Series(c.close)
    open_ = pd.Series(c.open)

    def run() -> float:
        fast = vbt.MA.run(close, 10)
        slow = vbt.MA.run(close, 30)
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False).to_numpy().copy()
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False).to_numpy().copy()
        exits[-1] = True
        pf = vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, fees=FEE, init_cash=CAPITAL, freq="1min"
        )
        return float(pf.final_value())

    final = run()
    cold = time.perf_counter() - t0
    warm, final = timed(run, repeat)
    return warm, float(final), cold


def backtesting_run(c: Candles) -> tuple[float, float] | None:
    if importlib.util.find_spec("backtesting") is None:
        return None
    import warnings

    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    frame = pd.DataFrame(
        {"Open": c.open, "High": c.high, "Low": c.low, "Close": c.close, "Volume": c.volume},
        index=pd.to_datetime(c.timestamp, unit="ms"),
    )
    n = len(c)

    def sma(values: np.ndarray, period: int) -> Any:
        return pd.Series(values).rolling(period).mean().to_numpy()

    class Crossover(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self) -> None:
            i = len(self.data) - 1
            f0, f1, s0, s1 = self.fast[-1], self.fast[-2], self.slow[-1], self.slow[-2]
            if i == n - 2:
                self.position.close()
            elif f0 > s0 and f1 <= s1 and not self.position:
                self.buy(size=1 - 1e-12)
            elif f0 < s0 and f1 >= s1 and self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(
            frame,
            Crossover,
            cash=CAPITAL,
            commission=FEE,
            trade_on_close=False,
            exclusive_orders=False,
        )
        t0 = time.perf_counter()
        stats = bt.run()
        elapsed = time.perf_counter() - t0
    return elapsed, float(stats["Equity Final [$]"])


def cold_cli(n: int) -> dict[str, float]:
    """Whole-process wall time of `tradebot backtest` over n candles (sim, then Parquet)."""
    tradebot = str(Path(sys.executable).with_name("tradebot"))
    end = START_MS + n * 60_000
    sim_cmd = [
        tradebot,
        "backtest",
        "--strategy",
        "ma_crossover",
        "--timeframe",
        "1m",
        "--from",
        str(START_MS),
        "--to",
        str(end),
        "--json",
        "--no-report",
    ]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        import pyarrow as pa
        import pyarrow.parquet as pq

        c = load(n)
        path = Path(tmp) / "candles.parquet"
        pq.write_table(
            pa.table(
                {
                    "timestamp": c.timestamp,
                    "open": c.open,
                    "high": c.high,
                    "low": c.low,
                    "close": c.close,
                    "volume": c.volume,
                }
            ),
            path,
        )
        file_cmd = [
            tradebot,
            "backtest",
            "--strategy",
            "ma_crossover",
            "--data",
            str(path),
            "--json",
            "--no-report",
        ]
        for name, cmd in (("sim", sim_cmd), ("parquet", file_cmd)):
            subprocess.run(cmd, check=True, capture_output=True)  # numba cache on disk
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, cwd=tmp)
                runs.append(time.perf_counter() - t0)
            out[name] = statistics.median(runs)
    return out


# --- portfolio: many pairs, one capital, a cap on open positions ------------------------


def portfolio_candles(pairs: int, n: int) -> dict[str, Candles]:
    """``pairs`` sim paths of n 1m candles: the six sim pairs under successive seeds."""
    sim = _sim_module()
    now = int(time.time() * 1000)
    names = list(sim.SIM_PAIRS)
    out: dict[str, Candles] = {}
    for k in range(pairs):
        symbol, seed = names[k % len(names)], 42 + k // len(names)
        rows = sim.SimPath(seed, sim.SIM_PAIRS[symbol]).closed_rows(
            "1m", START_MS, START_MS + n * 60_000, now
        )
        out[f"{symbol}#{seed}"] = Candles(
            rows[:, 0].astype(np.int64), *(np.ascontiguousarray(rows[:, i]) for i in range(1, 6))
        )
    return out


def forced_exit_signals(candles: dict[str, Candles]) -> dict[str, np.ndarray]:
    return {pair: our_signals(c) for pair, c in candles.items()}


def ours_portfolio(
    candles: dict[str, Candles], max_open: int, fee: float, repeat: int
) -> dict[str, float]:
    strategy = create_strategy("ma_crossover", {"fast": 10, "slow": 30})
    stake = CAPITAL / max_open

    def full() -> Any:
        return run_portfolio(strategy, candles, CAPITAL, fee, max_open_positions=max_open,
                             stake_amount=stake)  # fmt: skip

    signals = forced_exit_signals(candles)

    def simulate() -> Any:
        return simulate_portfolio(candles, signals, initial_capital=CAPITAL, fee=fee,
                                  max_open_positions=max_open, stake_amount=stake)  # fmt: skip

    simulate()  # warm (loads the numba cache)
    full_s, _ = timed(full, repeat)
    sim_s, result = timed(simulate, repeat)
    return {
        "full": full_s,
        "sim": sim_s,
        "final": result.final_equity,
        "trades": result.metrics["n_trades"],
        "skipped": result.metrics["entries_skipped"],
    }


def vectorbt_portfolio(
    candles: dict[str, Candles],
    signals: dict[str, np.ndarray],
    max_open: int,
    fee: float,
    repeat: int,
) -> dict[str, float] | None:
    """The same portfolio in vectorbt: from_signals with cash sharing. vectorbt has no cap
    on open positions, so a signal function decides each row's signals when vectorbt asks
    for its first column: the row's exits, then entries in column order while a slot is
    free and cash is left (it follows the cash as vectorbt books it, so that an entry
    vectorbt rejects for want of cash does not hold a slot)."""
    if importlib.util.find_spec("vectorbt") is None:
        return None
    import pandas as pd
    import vectorbt as vbt
    from numba import njit

    @njit(cache=False)
    def capped(
        ctx: Any, entries: Any, exits: Any, opens: Any, cap: int, stake: float, fee: float,
        qty: Any, row: Any, book: Any,
    ) -> Any:  # fmt: skip
        i, col = ctx.i, ctx.col
        if col == 0 and book[0] != i:  # vectorbt asks column 0 first in every row
            book[0] = i
            n_open = 0
            for j in range(entries.shape[1]):
                row[j] = 0
                if qty[j] > 0:
                    n_open += 1
            for j in range(entries.shape[1]):
                if qty[j] > 0 and exits[i, j]:
                    row[j] = -1
                    book[1] += qty[j] * opens[i, j] * (1 - fee)
                    qty[j] = 0.0
                    n_open -= 1
            for j in range(entries.shape[1]):
                if qty[j] == 0 and row[j] == 0 and entries[i, j] and n_open < cap:
                    row[j] = 1
                    if book[1] > 1e-9 * 10_000:
                        spend = min(stake * (1 + fee), book[1])
                        qty[j] = spend / (opens[i, j] * (1 + fee))
                        book[1] -= spend
                        n_open += 1
        held = qty[col] > 0 if row[col] != -1 else True
        if row[col] == 1:
            held = False  # the entry is this row's order: the row starts flat
        if (ctx.position_now > 0) != held:
            book[2] += 1  # our picture of vectorbt's positions was wrong: the rules differ
        return row[col] == 1, row[col] == -1, False, False

    names = list(candles)
    close = pd.DataFrame({p: candles[p].close for p in names})
    open_ = pd.DataFrame({p: candles[p].open for p in names})
    opens = np.ascontiguousarray(open_.to_numpy())
    stake = CAPITAL / max_open / (1 + fee)  # vectorbt adds the fee on top of the value

    def run(signals_too: bool, fixed: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
        if signals_too or fixed is None:
            fast = vbt.MA.run(close, 10)
            slow = vbt.MA.run(close, 30)
            above = fast.ma_crossed_above(slow).to_numpy()
            below = fast.ma_crossed_below(slow).to_numpy()
            entries = np.zeros(above.shape, dtype=np.bool_)
            exits = np.zeros(above.shape, dtype=np.bool_)
            entries[1:], exits[1:] = above[:-1], below[:-1]  # act at the next open
            entries[-1], exits[-1] = False, True  # everyone out at the last open
        else:
            entries, exits = fixed
        book = np.array([-1.0, CAPITAL, 0.0])  # row decided, cash, wrong guesses
        pf = vbt.Portfolio.from_signals(
            close,
            signal_func_nb=capped,
            signal_args=(
                np.ascontiguousarray(entries),
                np.ascontiguousarray(exits),
                opens,
                max_open,
                stake,
                fee,
                np.zeros(len(names)),
                np.zeros(len(names), np.int8),
                book,
            ),
            size=stake,
            size_type="value",
            price=open_,
            fees=fee,
            init_cash=CAPITAL,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            freq="1min",
        )
        return pf, book[2], (entries, exits)

    # Our signals, shifted to the bar they act on, for the simulation alone: vectorbt's MA
    # crossings can tie-break differently from TA-Lib's on a pair with a coarse tick.
    ours_shifted = np.column_stack([signals[p] for p in names])
    fixed = (np.zeros(ours_shifted.shape, np.bool_), np.zeros(ours_shifted.shape, np.bool_))
    fixed[0][1:], fixed[1][1:] = ours_shifted[:-1] == 1, ours_shifted[:-1] == -1
    t0 = time.perf_counter()
    run(True)
    cold = time.perf_counter() - t0
    full_s, (own, _, _) = timed(lambda: run(True), repeat)
    sim_s, (pf, mismatches, _) = timed(lambda: run(False, fixed), repeat)
    return {
        "full": full_s,
        "sim": sim_s,
        "final_own_signals": float(own.final_value()),
        "final": float(pf.final_value()),
        "trades": int(pf.trades.count()),
        "mismatches": int(mismatches),
        "cold": cold,
    }


def portfolio_section(pairs: int, n: int, max_open: int, fees: list[float], repeat: int) -> None:
    print(
        f"\nPortfolio: {pairs} sim pairs x {n:,} 1m candles, SMA(10/30) crossover, at most "
        f"{max_open} open, stake {CAPITAL / max_open:,.0f} of {CAPITAL:,.0f} per position (fee "
        "included), next-open fills, forced exit at the end."
    )
    t0 = time.perf_counter()
    candles = portfolio_candles(pairs, n)
    total = sum(len(c) for c in candles.values())
    print(f"  ({total:,} candles generated in {time.perf_counter() - t0:.1f} s)", flush=True)
    signals = forced_exit_signals(candles)
    for fee in fees:
        load = os.getloadavg()[0]
        ours = ours_portfolio(candles, max_open, fee, repeat)
        theirs = vectorbt_portfolio(candles, signals, max_open, fee, repeat)
        print(
            f"\nfee {fee * 100:g} %/side{'':22} {'M candles/s':>12} {'(sim only)':>11} "
            f"{'final equity':>18} {'trades':>7}"
        )
        rows = [("tradebot run_portfolio (numba)", ours)]
        if theirs is not None:
            rows.append(("vectorbt from_signals, cash_sharing", theirs))
        for name, figures in rows:
            full = total / figures["full"] / 1e6
            sim_only = total / figures["sim"] / 1e6
            print(
                f"{name:40} {full:12.2f} {sim_only:11.2f} {figures['final']:18.10f} "
                f"{int(figures['trades']):7d}"
            )
        if theirs is None:
            print("vectorbt is not installed (pip install -e '.[bench]'): skipped.")
        else:
            gap = abs(ours["final"] - theirs["final"]) / theirs["final"]
            print(
                f"  ours / vectorbt: {theirs['full'] / ours['full']:.1f}x with signals, "
                f"{theirs['sim'] / ours['sim']:.1f}x simulation alone; final equities (same "
                f"signals) differ by {gap:.1e} relative; slot-model misses: "
                f"{theirs['mismatches']}; vectorbt's own MA crossings end at "
                f"{theirs['final_own_signals']:.10f}; vectorbt cold {theirs['cold']:.1f} s"
            )
        print(
            f"  entries skipped for want of a slot or cash: {int(ours['skipped']):,}; "
            f"1-minute load average {load:.2f} at the start ({os.cpu_count()} cpus)"
        )


# --- end to end through the API ---------------------------------------------------------


class LatencyProbe:
    """GETs one URL back to back while a job runs; the latencies in ms."""

    def __init__(self, client: Any, url: str, headers: dict[str, str] | None = None) -> None:
        self.client, self.url, self.headers = client, url, headers
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            # Any answer counts: the time to answer is what is measured (a /health probe
            # of a busy shared database may say 503).
            await self.client.get(self.url, headers=self.headers)
            self.samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.samples


def p50_max(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    return f"{statistics.median(samples):.0f}/{max(samples):.0f} ms (n={len(samples)})"


# Where a job's time went: the analysis worker's log line (backtest_finished) and the market
# service's for the bulk request (ohlcv_bulk_served, its keys prefixed "market_"; seconds
# summed over the windows it works on two at a time).
STAGES = [
    ("queued_s", "queued (row stored -> worker claims it)"),
    ("load_s", "candles loaded"),
    ("transfer_s", "  bulk request to its last byte"),
    ("market_read_s", "    market: PostgreSQL reads (*)"),
    ("market_exchange_s", "    market: the sim builds missing candles (*)"),
    ("market_store_s", "    market: weeks sealed, rows stored (*)"),
    ("decode_s", "  Arrow stream decoded"),
    ("run_s", "engine (signals + fill loop)"),
    ("json_s", "result JSON"),
    ("store_s", "result stored"),
]


def log_lines(log_path: Path, event: str) -> list[dict[str, Any]]:
    """A service's JSON log lines of one event so far."""
    import orjson

    found = []
    for line in log_path.read_bytes().splitlines():
        if f'"{event}"'.encode() in line:
            with contextlib.suppress(ValueError):
                found.append(orjson.loads(line))
    return found


class Profiler:
    """py-spy on the services while one job runs (``--profile``): the frames with the
    largest inclusive share of the samples, per service."""

    def __init__(self, processes: dict[str, int], label: str) -> None:
        import shutil

        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.outputs = {
            name: Path(tempfile.gettempdir()) / f"bench-backtest-{label}-{name}.txt"
            for name in processes
        }
        self.spies = [
            subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                 "--threads", "--nonblocking", "--output", str(self.outputs[name])],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in processes.items()
        ]  # fmt: skip
        time.sleep(1.0)  # attached

    def report(self, label: str) -> None:
        import collections
        import re
        import signal

        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            spy.wait(60)
        for name, out in self.outputs.items():
            inclusive: collections.Counter[str] = collections.Counter()
            total = 0
            for line in out.read_text().splitlines() if out.exists() else []:
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():
                    continue
                total += int(count)
                frames = {re.sub(r"\(/\S*?/(site-packages|lib/python3\.\d+)/", "(", f)
                          for f in stack.split(";")[1:]}  # fmt: skip
                for frame in frames:
                    inclusive[frame.replace(str(ROOT) + "/", "")] += int(count)
            print(f"\n  py-spy, {label}, {name} service ({total} samples at 200/s, {out}):")
            for frame, samples in inclusive.most_common(60):
                if any(skip in frame for skip in _PLUMBING):
                    continue
                print(f"    {100 * samples / max(total, 1):5.1f}%  {frame[:140]}")


_PLUMBING = ("threading.py", "runpy", "click/", "uvicorn/main", "uvicorn/__main__",
             "uvicorn/server", "uvicorn/_compat", "asyncio/runners", "thread.py")  # fmt: skip


async def api_runs(n: int, runs: int, profile: bool) -> list[dict[str, Any]]:
    """End-to-end figures of ``runs`` runs (not stored, then stored) over n candles."""
    from sqlalchemy import text

    from bench.clients import http_client
    from bench.stores import ScratchStores
    from shared.db import create_engine, create_sessionmaker
    from shared.redis import create_redis
    from tests.factories import create_user
    from tests.servers import ServiceProcess
    from tests.stores import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET
    from tradebot.stack import serve_command

    class LoggedService(ServiceProcess):
        """A service whose log lines (stdout) go to a file the bench reads."""

        def __init__(self, service: str, env: dict[str, str]) -> None:
            super().__init__(service, env=env)
            self.log_path = Path(tempfile.gettempdir()) / f"bench-backtest-{service}.log"

        def start(self, *, wait: bool = True) -> ServiceProcess:
            with self.log_path.open("wb") as log:
                self.proc = subprocess.Popen(
                    serve_command(self.service, self.port), env=self.env, stdout=log, stderr=log
                )
            if wait:
                self.wait_listening()
            return self

    stores = await ScratchStores.open()
    env = {
        "DATABASE_URL": stores.database_url,
        "REDIS_URL": stores.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "development",
        # INFO for the lines with the stages (and a line per request, as `tradebot up`).
        "LOG_LEVEL": "INFO",
        "MARKET_EXCHANGES": "sim",
    }
    market = LoggedService("market", env)
    await asyncio.to_thread(market.start)
    analysis = LoggedService("analysis", {**env, "MARKET_SERVICE_URLS": market.url})
    await asyncio.to_thread(analysis.start)
    engine = create_engine(stores.database_url, pool_size=2)
    redis = create_redis(stores.redis_url)
    out: list[dict[str, Any]] = []
    try:
        async with create_sessionmaker(engine, redis)() as session:
            user = await create_user(session, redis)
        async with http_client(timeout=120) as client:

            async def backtest(start_ms: int, count: int) -> dict[str, Any]:
                """Seconds from the POST to the job done with its result read, and parts."""
                body = {
                    "strategy": "ma_crossover",
                    "parameters": {"fast": 10, "slow": 30},
                    "exchange": "sim",
                    "symbol": "BTC/USDT",
                    "timeframe": "1m",
                    "start": start_ms / 1000,
                    "end": (start_ms + count * 60_000) / 1000,
                    "fee": FEE,
                }
                t0 = time.perf_counter()
                accepted = await client.post(
                    analysis.url + "/analysis/backtests", json=body, headers=user.headers
                )
                accepted.raise_for_status()
                posted = time.perf_counter() - t0
                job = f"{analysis.url}/analysis/backtests/{accepted.json()['id']}"
                while True:
                    t1 = time.perf_counter()
                    answer = await client.get(job, headers=user.headers)
                    state = answer.json()
                    if state["status"] in ("done", "failed"):
                        break
                    await asyncio.sleep(0.05)
                done = time.perf_counter()
                if state["status"] != "done":
                    raise SystemExit(f"the API backtest failed: {state['error']}")
                if not state["result"]["metrics"]["n_trades"]:
                    raise SystemExit(f"the API backtest made no trade: {state['result']}")
                job_line = next(
                    line for line in log_lines(analysis.log_path, "backtest_finished")
                    if line.get("backtest_id") == str(state["id"])
                )  # fmt: skip
                # One bulk request a job, one job at a time: the market's last line is its.
                served = log_lines(market.log_path, "ohlcv_bulk_served")[-1]
                stages = {**job_line, **{f"market_{k}": v for k, v in served.items()}}
                return {
                    "total_s": done - t0,
                    "post_s": posted,
                    "get_s": done - t1,
                    "result_mb": len(answer.content) / 1e6,
                    **{key: stages.get(key, 0.0) for key, _ in STAGES},
                }

            ticker = f"{market.url}/market/ticker?symbol=ETH/USDT"
            health = f"{analysis.url}/health"
            await backtest(START_MS - 20_000 * 60_000, 5000)  # warm both processes
            idle = [LatencyProbe(client, ticker), LatencyProbe(client, health)]
            for probe in idle:
                probe.start()
            await asyncio.sleep(3)
            idle_ticker, idle_health = [await probe.stop() for probe in idle]
            pids = {"market": pid_of(market), "analysis": pid_of(analysis)}
            for run in range(runs):
                async with engine.begin() as conn:
                    await conn.execute(text("TRUNCATE ohlcv_data, ohlcv_blocks"))
                figures: dict[str, Any] = {"load": os.getloadavg()[0]}
                for phase in ("fresh", "stored"):
                    spy = Profiler(pids, phase) if profile and run == 0 else None
                    probes = [LatencyProbe(client, ticker), LatencyProbe(client, health)]
                    for probe in probes:
                        probe.start()
                    figures[phase] = await backtest(START_MS, n)
                    figures[f"{phase}_ticker"], figures[f"{phase}_health"] = [
                        await probe.stop() for probe in probes
                    ]
                    if spy is not None:
                        spy.report(f"{phase}, {figures[phase]['total_s']:.2f} s")
                figures["idle_ticker"], figures["idle_health"] = idle_ticker, idle_health
                out.append(figures)
                print(
                    f"  run {run + 1}: not stored {figures['fresh']['total_s']:.2f} s, "
                    f"stored {figures['stored']['total_s']:.2f} s (load {figures['load']:.2f})",
                    flush=True,
                )
    finally:
        await redis.aclose()
        await engine.dispose()
        analysis.stop()
        market.stop()
        await stores.close()
    return out


def pid_of(service: Any) -> int:
    assert service.proc is not None
    return int(service.proc.pid)


def print_api(n: int, engine_s: float, runs: list[dict[str, Any]]) -> None:
    def span(phase: str, key: str) -> str:
        values = [r[phase][key] for r in runs if key in r[phase]]
        if not values:
            return "n/a"
        if len(values) == 1:
            return f"{values[0]:.2f} s"
        return f"{min(values):.2f}-{max(values):.2f} s"

    def merged(key: str) -> list[float]:
        return [x for r in runs for x in r[key]]

    def row(label: str, key: str, note: str = "") -> None:
        print(f"  {label:50} {span('fresh', key):>16} {span('stored', key):>16}{note}")

    print(f"\nPOST /analysis/backtests to done (result read), {n:,} sim 1m candles:")
    print(f"  {len(runs)} run(s) {'':41} {'not yet stored':>16} {'stored':>16}")
    row("end to end", "total_s", "   targets < 15 s, < 5 s")
    row("  POST answered (202)", "post_s")
    for key, label in STAGES:
        row("  " + label, key)
    row(f"  GET of the done job ({runs[0]['stored']['result_mb']:.1f} MB)", "get_s")
    print("  (*) summed over the bulk request's windows, two of which are worked on at once")
    print(f"  {'the engine alone on the same candles (in process)':50} {engine_s:>14.2f} s")
    print("  latency p50/max while idle / during a not-stored job / during a stored job:")
    for name, key in (("GET /market/ticker", "ticker"), ("analysis GET /health", "health")):
        print(
            f"    {name:22} {p50_max(runs[0]['idle_' + key])} / "
            f"{p50_max(merged('fresh_' + key))} / {p50_max(merged('stored_' + key))}"
        )
    loads = ", ".join(f"{r['load']:.2f}" for r in runs)
    print(f"  1-minute load average at the start of each run: {loads} ({os.cpu_count()} cpus)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--reference-candles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--api-runs", type=int, default=3)
    parser.add_argument("--skip-portfolio", action="store_true")
    parser.add_argument("--portfolio-only", action="store_true")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--pair-candles", type=int, default=100_000)
    parser.add_argument("--max-open", type=int, default=10)
    parser.add_argument(
        "--portfolio-fees",
        default="0.001,0",
        help="fees to run the portfolio at, comma-separated (0 keeps the capital invested)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on both services during the first run"
    )
    args = parser.parse_args()
    fees = [float(f) for f in args.portfolio_fees.split(",")]
    if args.portfolio_only:
        portfolio_section(args.pairs, args.pair_candles, args.max_open, fees, args.repeat)
        return

    print(f"Loading {args.candles:,} sim BTC/USDT 1m candles ...")
    big = load(args.candles)
    small = head(big, args.reference_candles)
    n, m = len(big), len(small)
    print("SMA(10/30) crossover, fee 0.1 %/side, next-open fills, forced exit at the end.\n")

    ours_big = ours(big, args.repeat)
    ours_small = ours(small, args.repeat)
    ref_big = numpy_reference(big)
    ref_small = numpy_reference(small)
    rows = [
        ("tradebot engine (numba)", n, n / ours_big["full"], ours_big["final"]),
        ("  same, with SL/TP/trailing", n, n / ours_big["stops"], float("nan")),
        ("plain numpy (no stops)", n, float("nan"), ref_big),
        ("tradebot engine (numba)", m, m / ours_small["full"], ours_small["final"]),
        ("plain numpy (no stops)", m, float("nan"), ref_small),
    ]
    vbt_big = vectorbt_run(big, args.repeat)
    vbt_small = vectorbt_run(small, args.repeat)
    notes = []
    if vbt_big is None or vbt_small is None:
        notes.append("vectorbt is not installed (pip install -e '.[bench]'): skipped.")
    else:
        rows.append(("vectorbt Portfolio.from_signals", n, n / vbt_big[0], vbt_big[1]))
        rows.append(("vectorbt Portfolio.from_signals", m, m / vbt_small[0], vbt_small[1]))
        notes.append(f"vectorbt cold (import + JIT + first run): {vbt_big[2]:.1f} s")
    bt = backtesting_run(small)
    if bt is None:
        notes.append("backtesting.py is not installed (pip install -e '.[bench]'): skipped.")
    else:
        rows.append(("backtesting.py (FractionalBacktest)", m, m / bt[0], bt[1]))

    print(f"{'engine':38} {'candles':>10} {'M candles/s':>12} {'final equity':>16}")
    for name, count, speed, final in rows:
        speed_text = f"{speed / 1e6:12.2f}" if speed == speed else f"{'':>12}"
        final_text = f"{final:16.10g}" if final == final else f"{'':>16}"
        print(f"{name:38} {count:>10,} {speed_text} {final_text}")
    print()
    for note in notes:
        print(note)
    if not args.skip_portfolio:
        portfolio_section(args.pairs, args.pair_candles, args.max_open, fees, args.repeat)
    if not args.skip_cli:
        cli = cold_cli(args.candles)
        print(
            f"cold `tradebot backtest` over {args.candles:,} candles, whole process "
            f"(median of 3): sim {cli['sim']:.2f} s, Parquet file {cli['parquet']:.2f} s"
        )
    if not args.skip_api:
        print(f"\nAPI runs over {args.candles:,} candles ...", flush=True)
        runs = asyncio.run(api_runs(args.candles, args.api_runs, args.profile))
        print_api(args.candles, ours_big["full"], runs)


if __name__ == "__main__":
    main()
