"""Backtest engine speed, side by side with vectorbt and backtesting.py on the same rules.

Workload: SMA(10)/SMA(30) crossover, long only, signal on the close, fill at the next open,
fee 0.1 % per side, no slippage, all equity per trade, on 1-minute candles of the sim
exchange (BTC/USDT). A forced exit on the second-to-last candle makes every engine end
flat at the last open, so the final equities must agree.

    .venv/bin/python bench/backtest.py [--candles 1000000] [--reference-candles 100000]

The references come from the ``bench`` extra (``pip install -e '.[bench]'``); without them
the script says so and prints our own figures. Figures are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
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

from shared.backtest import run_backtest, simulate_signals  # noqa: E402
from shared.candles import Candles  # noqa: E402
from shared.strategies import create_strategy  # noqa: E402
from tradebot.backtest import sim_candles  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--reference-candles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()

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
    if not args.skip_cli:
        cli = cold_cli(args.candles)
        print(
            f"cold `tradebot backtest` over {args.candles:,} candles, whole process "
            f"(median of 3): sim {cli['sim']:.2f} s, Parquet file {cli['parquet']:.2f} s"
        )


if __name__ == "__main__":
    main()
