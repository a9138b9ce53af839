"""``tradebot backtest`` and ``tradebot lookahead`` (docs/operations.md).

Candles come from ``--data FILE`` (CSV or Parquet with the columns timestamp, open, high,
low, close, volume; timestamps in epoch ms or ISO-8601), from the offline ``sim`` exchange
(generated locally: the very path the market service serves), or, for a real exchange,
from the market service (``MARKET_SERVICE_URLS``), which serves its stored history and
fetches the gaps.

``--pairs A/B,C/D`` runs a portfolio backtest (docs/trading.md): the pairs share the
capital, ``--max-open`` caps the open positions. Their candles come from the same
sources, or from several ``--data`` files (or a folder of them), each named after its pair
as freqtrade names them (``BTC_USDT-1h.parquet`` is BTC/USDT; ``BTC_USDT.csv`` too).

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
    from shared.backtest import BacktestResult, PortfolioResult
    from shared.candles import Candles

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
DATA_SUFFIXES = {".csv", ".parquet", ".pq"}


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


def parse_pairs(value: str) -> list[str]:
    """``BTC/USDT,ETH/USDT`` -> the pairs in that order (the portfolio's entry ranking)."""
    pairs = [p.strip().upper() for p in value.split(",") if p.strip()]
    bad = [p for p in pairs if p.count("/") != 1 or not all(p.split("/"))]
    if not pairs or bad:
        raise typer.BadParameter(
            f"{', '.join(bad) or value!r}: list pairs as BASE/QUOTE, e.g. BTC/USDT,ETH/USDT",
            param_hint="--pairs",
        )
    if len(set(pairs)) != len(pairs):
        raise typer.BadParameter("a pair is listed twice", param_hint="--pairs")
    return pairs


# --- candle sources -------------------------------------------------------------------
def pair_of_file(path: Path) -> str:
    """The pair a data file holds, by freqtrade's naming: ``BTC_USDT-1h.feather`` ->
    ``BTC/USDT``; a name without ``_`` is taken as it is (``btcusdt.csv`` -> BTCUSDT)."""
    return path.stem.split("-")[0].replace("_", "/").upper()


def data_files(paths: list[Path], pairs: list[str] | None) -> dict[str, Path]:
    """The data file of each pair: ``paths`` are files or folders of CSV/Parquet files;
    with ``pairs``, exactly those pairs' files, in that order."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)
            if not files:
                raise CandleSourceError(f"{path}: no .csv or .parquet files in this folder")
        elif path.exists():
            files = [path]
        else:
            raise CandleSourceError(f"{path}: no such file")
        for file in files:
            pair = pair_of_file(file)
            if pair in found:
                raise CandleSourceError(f"{found[pair]} and {file} both hold {pair}")
            found[pair] = file
    if pairs is None:
        return found
    missing = [p for p in pairs if p not in found]
    if missing:
        raise CandleSourceError(
            f"no data file for {', '.join(missing)} (files are named after their pair, "
            f"e.g. {missing[0].replace('/', '_')}-1h.parquet; found: {', '.join(found)})"
        )
    return {pair: found[pair] for pair in pairs}


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

    from shared.backtest.report import format_metric

    table = Table(title="Backtest metrics", show_header=False)
    for name, value in result.metrics.items():
        table.add_row(name, format_metric(name, value))
    return table


def pairs_table(result: PortfolioResult) -> Any:
    """One row per pair of a portfolio backtest, in pair-list order."""
    from rich.table import Table

    from shared.backtest.report import format_metric

    metrics = result.pair_metrics or {}
    columns = list(next(iter(metrics.values()), {}))
    table = Table(title="Per pair")
    for column in ["pair", *columns]:
        table.add_column(column, justify="left" if column == "pair" else "right")
    for pair, values in metrics.items():
        table.add_row(pair, *(format_metric(c, values[c]) for c in columns))
    return table


def backtest(
    strategy: Annotated[str, typer.Option(help="Strategy name (see the catalog).")],
    symbol: Annotated[str, typer.Option(help="Pair, e.g. BTC/USDT.")] = "BTC/USDT",
    pairs: Annotated[
        str | None,
        typer.Option(
            help="A portfolio: pairs sharing the capital, in entry-priority order "
            "(BTC/USDT,ETH/USDT,...)."
        ),
    ] = None,
    max_open: Annotated[
        int | None,
        typer.Option("--max-open", help="Portfolio: most positions open at once (default: all)."),
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Candle timeframe.")] = "1h",
    start: Annotated[
        str | None, typer.Option("--from", help="First candle (2024-01-01 or epoch ms).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, exclusive (default: now).")] = None,
    exchange: Annotated[str, typer.Option(help="sim, or a ccxt id via the market service.")] = (
        "sim"
    ),
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="CSV/Parquet: timestamp,open,high,low,close,volume. Repeat it, or name a "
            "folder, for a portfolio (files named after their pair: BTC_USDT-1h.parquet)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter name=value.")
    ] = None,
    fee: Annotated[float, typer.Option(help="Fee per side, fraction of notional.")] = 0.001,
    slippage: Annotated[float, typer.Option(help="Slippage, fraction against you.")] = 0.0,
    capital: Annotated[str, typer.Option(help="Initial capital (quote currency).")] = "10000",
    size: Annotated[
        float | None,
        typer.Option(
            help="Position size, fraction of equity (default 1; portfolio: 1 / --max-open)."
        ),
    ] = None,
    stake: Annotated[
        str | None,
        typer.Option(help="Portfolio: a fixed stake per position (quote currency), not --size."),
    ] = None,
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
    """Backtest a strategy on stored, simulated or file candles, over one pair or a
    portfolio of pairs; metrics, trades, report."""
    err = Console(stderr=True)
    out = Console()
    if timeframe not in TIMEFRAME_MS:
        raise typer.BadParameter(f"use one of {', '.join(TIMEFRAME_MS)}", param_hint="--timeframe")
    params = parse_params(param or [])
    pair_list = parse_pairs(pairs) if pairs is not None else None
    files = data or []
    portfolio = pair_list is not None or len(files) > 1 or any(f.is_dir() for f in files)
    if not portfolio and (max_open is not None or stake is not None):
        raise typer.BadParameter("--max-open and --stake need a portfolio: give --pairs")
    frame = TIMEFRAME_MS[timeframe]
    end_ms = parse_time(end) if end else int(time.time() * 1000)
    start_ms = parse_time(start) if start else end_ms - 1000 * frame
    if start_ms >= end_ms:
        raise typer.BadParameter("--from must be before --to")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from shared.backtest import BacktestInputError, run_backtest, run_portfolio
    from shared.resample import TimeframeError, check_higher
    from shared.strategies import StrategyParamsError, UnknownStrategyError, create_strategy

    try:
        chosen = create_strategy(strategy, params)
        if data is None:  # a file's timeframe is read off its candles when they run
            for higher in chosen.higher_timeframes():
                check_higher(frame, higher)
    except (UnknownStrategyError, StrategyParamsError, TimeframeError) as exc:
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
            series: dict[str, Candles] = {}
            if files and portfolio:
                for pair, path in data_files(files, pair_list).items():
                    series[pair] = load_file(path)
                source = ", ".join(str(f) for f in files)
            elif files:
                series[symbol], source = load_candles(
                    data=files[0],
                    exchange=exchange,
                    symbol=symbol,
                    timeframe=timeframe,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    seed=seed,
                )
            else:
                for pair in pair_list or [symbol]:
                    series[pair], source = load_candles(
                        data=None,
                        exchange=exchange,
                        symbol=pair,
                        timeframe=timeframe,
                        start_ms=start_ms,
                        end_ms=end_ms,
                        seed=seed,
                    )
                if portfolio:
                    source = f"{exchange} {timeframe}"
        except CandleSourceError as exc:
            err.print(f"[red]{exc}[/]", soft_wrap=True)
            raise typer.Exit(1) from None
        candles = sum(len(c) for c in series.values())
        progress.update(task, completed=0.1, description=f"backtesting {candles:,} candles")

        def advance(fraction: float) -> None:
            progress.update(task, completed=0.1 + 0.85 * fraction)

        try:
            result: BacktestResult
            if portfolio:
                result = run_portfolio(
                    chosen,
                    series,
                    capital,
                    fee,
                    slippage,
                    max_open_positions=max_open,
                    position_size=size,
                    stake_amount=stake,
                    stop_loss=stop_loss,
                    take_profit=take_profit,
                    trailing_stop=trailing_stop,
                    progress=advance,
                )
            else:
                result = run_backtest(
                    chosen,
                    series[symbol],
                    capital,
                    fee,
                    slippage,
                    1.0 if size is None else size,
                    stop_loss=stop_loss,
                    take_profit=take_profit,
                    trailing_stop=trailing_stop,
                    progress=advance,
                )
        except (BacktestInputError, ValueError) as exc:  # TimeframeError is a ValueError
            err.print(f"[red]{source}: {exc}[/]", soft_wrap=True)
            raise typer.Exit(1) from None
        progress.update(task, completed=1.0, description="done")

    what = f"{len(series)} pairs ({', '.join(series)})" if portfolio else source
    report_path = None
    if not no_report:
        from shared.backtest.report import write_report

        report_path = write_report(
            result, report or Path("backtest-report.html"), title=f"{chosen.name} on {what}"
        )
    from shared.backtest import PortfolioResult

    if as_json:
        body: dict[str, Any] = _json_safe(result.metrics)
        if isinstance(result, PortfolioResult):
            body = {
                "metrics": body,
                "pair_metrics": {
                    pair: _json_safe(m) for pair, m in (result.pair_metrics or {}).items()
                },
            }
        sys.stdout.write(json.dumps(body) + "\n")
        return
    out.print(metrics_table(result))
    if isinstance(result, PortfolioResult):
        out.print(pairs_table(result))
    out.print(
        f"{candles:,} candles from {what}; {result.metrics['n_trades']} trades"
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
    from shared.resample import TimeframeError

    try:
        report = check_lookahead(chosen, sample, cuts=cuts)
    except TimeframeError as exc:
        out.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
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
