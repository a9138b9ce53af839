"""``tradebot backtest`` and ``tradebot lookahead`` (docs/operations.md).

Candles come from ``--data FILE`` (CSV or Parquet with the columns timestamp, open, high,
low, close, volume; timestamps in epoch ms or ISO-8601), from the offline ``sim`` exchange
(generated locally: the very path the market service serves), or, for a real exchange,
from the market service (``MARKET_SERVICE_URLS``), which serves its stored history and
fetches the gaps.

Heavy imports (numpy, numba, the engine) happen inside the commands so that the rest of
the CLI starts fast.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shared.timeframes import TIMEFRAME_MS

if TYPE_CHECKING:
    from shared.backtest import BacktestResult
    from shared.candles import Candles

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class CandleSourceError(Exception):
    """Candles could not be loaded; the message says why and what to do."""


# --- arguments ------------------------------------------------------------------------
def parse_time(value: str) -> int:
    """Epoch milliseconds from ``1704067200000``, ``2024-01-01`` or an ISO-8601 time (UTC)."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a time; use 2024-01-01, 2024-01-01T12:00 or epoch ms"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; values are JSON when they parse (10, 0.5, true), else text."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--param {item!r}: use name=value, e.g. --param fast=10")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        params[name.strip()] = value
    return params


# --- candle sources -------------------------------------------------------------------
def load_file(path: Path) -> Candles:
    """A CSV or Parquet file of timestamp, open, high, low, close, volume."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from shared.candles import Candles

    if not path.exists():
        raise CandleSourceError(f"{path}: no such file")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CandleSourceError(f"{path}: cannot read it ({exc})") from None
    names = {name.lower(): name for name in table.column_names}
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise CandleSourceError(
            f"{path}: missing column(s) {', '.join(missing)}; need {', '.join(COLUMNS)}"
        )
    ts_col = table.column(names["timestamp"])
    if pa.types.is_timestamp(ts_col.type):
        ts = pc.cast(pc.cast(ts_col, pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy()
    elif pa.types.is_string(ts_col.type) or pa.types.is_large_string(ts_col.type):
        ts = np.array([parse_time(str(v)) for v in ts_col.to_pylist()], dtype=np.int64)
    else:
        ts = ts_col.to_numpy().astype(np.int64)
    columns = [
        np.ascontiguousarray(table.column(names[c]).to_numpy(), dtype=np.float64)
        for c in COLUMNS[1:]
    ]
    return Candles(np.ascontiguousarray(ts, dtype=np.int64), *columns)


def _sim_module() -> Any:
    """``market_service.exchanges.sim`` without the package ``__init__``.

    The package's ``__init__`` builds the exchange registry, which imports ccxt (about a
    second); the sim generator needs none of it, and a cold backtest is meant to start fast.
    """
    import importlib
    import importlib.util
    import types

    name = "market_service.exchanges"
    if name in sys.modules:
        return importlib.import_module(name + ".sim")
    spec = importlib.util.find_spec("market_service")
    if spec is None or not spec.submodule_search_locations:
        raise CandleSourceError("the market service package is not installed")
    stub = types.ModuleType(name)
    stub.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "exchanges")]
    sys.modules[name] = stub
    try:
        return importlib.import_module(name + ".sim")
    finally:
        del sys.modules[name]  # a later real import runs the package normally


def sim_candles(
    symbol: str, timeframe: str, start_ms: int, end_ms: int, *, seed: int = 42
) -> Candles:
    """Closed candles of the sim exchange opening in ``[start_ms, end_ms)``."""
    import numpy as np

    from shared.candles import Candles

    sim = _sim_module()
    if symbol not in sim.SIM_PAIRS:
        raise CandleSourceError(
            f"unknown sim symbol {symbol!r}; choose one of {', '.join(sim.SIM_PAIRS)}"
        )
    path = sim.SimPath(seed, sim.SIM_PAIRS[symbol])
    rows = path.closed_rows(timeframe, start_ms, end_ms, int(time.time() * 1000))
    return Candles(
        rows[:, 0].astype(np.int64), *(np.ascontiguousarray(rows[:, i]) for i in range(1, 6))
    )


def market_candles(
    exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int
) -> Candles:
    """Closed candles through the market service's bulk route (stored history, gaps
    fetched and stored by it), in one request."""
    import asyncio

    from analysis_service.market import MarketClient
    from shared.errors import AppError
    from shared.service_client import ServiceClient
    from shared.settings import ServiceSettings, split_urls

    urls = split_urls(ServiceSettings().market_service_urls)

    async def fetch() -> Candles:
        async with ServiceClient("market", urls, caller="backtest", timeout_s=30) as http:
            return await MarketClient(http, bulk_timeout_s=300).fetch_bulk(
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                start_ms=start_ms,
                end_ms=end_ms,
                max_candles=2_000_000,
            )

    try:
        return asyncio.run(fetch())
    except AppError as exc:
        raise CandleSourceError(
            f"{exc.detail} (market service at {', '.join(urls)}; start it with "
            "`tradebot serve market` or pass --data FILE)"
        ) from None


def load_candles(
    *,
    data: Path | None,
    exchange: str,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    seed: int,
) -> tuple[Candles, str]:
    """The candles of ``--data``, of the sim exchange, or of another exchange through the
    market service; and where they came from, for messages."""
    if data is not None:
        return load_file(data), str(data)
    if exchange == "sim":
        return sim_candles(
            symbol, timeframe, start_ms, end_ms, seed=seed
        ), f"sim {symbol} {timeframe}"
    candles = market_candles(exchange, symbol, timeframe, start_ms, end_ms)
    return candles, f"{exchange} {symbol} {timeframe}"


# --- output ---------------------------------------------------------------------------
def metrics_table(result: BacktestResult) -> Any:
    from rich.table import Table

    table = Table(title="Backtest metrics", show_header=False)
    percent = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure"}
    for name, value in result.metrics.items():
        if value is None:
            text = "n/a"
        elif name in percent:
            text = f"{value * 100:,.2f} %"
        elif name == "final_equity":
            text = f"{value:,.2f}"
        elif isinstance(value, float):
            text = f"{value:,.3f}"
        else:
            text = str(value)
        table.add_row(name, text)
    return table


def backtest(
    strategy: Annotated[str, typer.Option(help="Strategy name (see the catalog).")],
    symbol: Annotated[str, typer.Option(help="Pair, e.g. BTC/USDT.")] = "BTC/USDT",
    timeframe: Annotated[str, typer.Option(help="Candle timeframe.")] = "1h",
    start: Annotated[
        str | None, typer.Option("--from", help="First candle (2024-01-01 or epoch ms).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).")] = None,
    exchange: Annotated[str, typer.Option(help="sim, or a ccxt id via the market service.")] = (
        "sim"
    ),
    data: Annotated[
        Path | None, typer.Option(help="CSV/Parquet: timestamp,open,high,low,close,volume.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter name=value.")
    ] = None,
    fee: Annotated[float, typer.Option(help="Fee per side, fraction of notional.")] = 0.001,
    slippage: Annotated[float, typer.Option(help="Slippage, fraction against you.")] = 0.0,
    capital: Annotated[str, typer.Option(help="Initial capital (quote currency).")] = "10000",
    size: Annotated[float, typer.Option(help="Position size, fraction of equity.")] = 1.0,
    stop_loss: Annotated[float | None, typer.Option(help="Stop loss fraction.")] = None,
    take_profit: Annotated[float | None, typer.Option(help="Take profit fraction.")] = None,
    trailing_stop: Annotated[float | None, typer.Option(help="Trailing stop fraction.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as one JSON object.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: backtest-report.html).")
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Write no report.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the sim exchange.", envvar="SIM_SEED")] = 42,
) -> None:
    """Backtest a strategy on stored, simulated or file candles; metrics, trades, report."""
    err = Console(stderr=True)
    out = Console()
    if timeframe not in TIMEFRAME_MS:
        raise typer.BadParameter(f"use one of {', '.join(TIMEFRAME_MS)}", param_hint="--timeframe")
    params = parse_params(param or [])
    frame = TIMEFRAME_MS[timeframe]
    end_ms = parse_time(end) if end else int(time.time() * 1000)
    start_ms = parse_time(start) if start else end_ms - 1000 * frame
    if start_ms >= end_ms:
        raise typer.BadParameter("--from must be before --to")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shared.backtest import BacktestInputError, run_backtest
    from shared.strategies import StrategyParamsError, UnknownStrategyError, create_strategy

    try:
        chosen = create_strategy(strategy, params)
    except (UnknownStrategyError, StrategyParamsError) as exc:
        err.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=as_json,
        disable=not err.is_terminal and as_json,
    ) as progress:
        task = progress.add_task("loading candles", total=1.0)
        try:
            candles, source = load_candles(
                data=data,
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                start_ms=start_ms,
                end_ms=end_ms,
                seed=seed,
            )
        except CandleSourceError as exc:
            err.print(f"[red]{exc}[/]", soft_wrap=True)
            raise typer.Exit(1) from None
        progress.update(task, completed=0.1, description=f"backtesting {len(candles):,} candles")
        try:
            result = run_backtest(
                chosen,
                candles,
                capital,
                fee,
                slippage,
                size,
                stop_loss=stop_loss,
                take_profit=take_profit,
                trailing_stop=trailing_stop,
                progress=lambda f: progress.update(task, completed=0.1 + 0.85 * f),
            )
        except BacktestInputError as exc:
            err.print(f"[red]{source}: {exc}[/]")
            raise typer.Exit(1) from None
        progress.update(task, completed=1.0, description="done")

    report_path = None
    if not no_report:
        from shared.backtest.report import write_report

        report_path = write_report(
            result,
            report or Path("backtest-report.html"),
            title=f"{chosen.name} on {source}",
        )
    if as_json:
        sys.stdout.write(json.dumps(_json_safe(result.metrics)) + "\n")
        return
    out.print(metrics_table(result))
    out.print(
        f"{len(candles):,} candles from {source}; {result.metrics['n_trades']} trades"
        + (f"; report: {report_path}" if report_path else "")
    )


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }


def lookahead(
    strategy: Annotated[str, typer.Argument(help="Strategy name (built-in or plugin).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter name=value.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="CSV/Parquet candles (default: sim BTC/USDT 1h).")
    ] = None,
    candles: Annotated[int, typer.Option(help="How many sim candles to test on.")] = 3000,
    cuts: Annotated[int, typer.Option(help="How many prefixes to compare.")] = 60,
) -> None:
    """Check that a strategy never looks ahead: signals up to t must not change when the
    candles after t are removed."""
    out = Console()
    from shared.backtest import check_lookahead
    from shared.strategies import StrategyParamsError, UnknownStrategyError, create_strategy

    try:
        chosen = create_strategy(strategy, parse_params(param or []))
    except (UnknownStrategyError, StrategyParamsError) as exc:
        out.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        if data is not None:
            sample = load_file(data)
        else:
            end = int(time.time() * 1000)
            sample = sim_candles("BTC/USDT", "1h", end - (candles + 1) * 3_600_000, end)
    except CandleSourceError as exc:
        out.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    report = check_lookahead(chosen, sample, cuts=cuts)
    if report.ok:
        out.print(
            f"[green]OK[/]: {chosen.name} gave the same signals on {report.cuts_checked} "
            f"truncated histories of {report.candles} candles (no look-ahead found)."
        )
        return
    out.print(f"[red]LOOK-AHEAD[/]: {chosen.name} changes past signals when it sees the future:")
    for index, prefix_value, full_value in report.mismatches:
        when = datetime.fromtimestamp(int(sample.timestamp[index]) / 1000, tz=UTC)
        out.print(
            f"  candle {index} ({when:%Y-%m-%d %H:%M}): {prefix_value} with candles up to it, "
            f"{full_value} with the whole history"
        )
    raise typer.Exit(1)
