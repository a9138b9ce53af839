"""``tradebot optimise`` (docs/operations.md): search a strategy's parameters on stored,
simulated or file candles, in ``--workers N`` processes sharing one study.

The workers are the analysis service's own (:mod:`analysis_service.optimisations.runner`):
each loads nothing but the candles it is handed and joins the run's Optuna studies in
the Redis journal, so ``--workers 4`` runs four trials at a time and a worker that dies
costs one trial. Redis is ``REDIS_URL``; without it, an embedded Redis (the ``local``
extra) is started for the run. The progress bar reads the journal; at the end the best
trials are printed as a table and an HTML report is written (optimisation history,
parameter importances, in- and out-of-sample metrics per walk-forward fold).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shared.timeframes import TIMEFRAME_MS
from tradebot.backtest import CandleSourceError, load_candles, parse_params, parse_time

if TYPE_CHECKING:
    from analysis_service.optimisations.summary import Summary
    from shared.candles import Candles


def parse_range(text: str) -> dict[str, Any]:
    """``low:high``, ``low:high:step``, ``low:high:log``, ``a,b,c`` (choices) or ``""``."""
    if not text:
        return {}
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError("use low:high, low:high:step or low:high:log")
        spec: dict[str, Any] = {"low": _number(parts[0]), "high": _number(parts[1])}
        if len(parts) == 3:
            if parts[2] == "log":
                spec["log"] = True
            else:
                spec["step"] = _number(parts[2])
        return spec
    return {"choices": [_value(part) for part in text.split(",")]}


def _number(text: str) -> float | int:
    value = _value(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{text!r} is not a number")
    return value


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_space(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--space`` options: ``fast=5:50``, ``ma=sma,ema``, or just ``fast``."""
    space: dict[str, dict[str, Any]] = {}
    for item in items:
        name, _, spec = item.partition("=")
        try:
            space[name.strip()] = parse_range(spec.strip())
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint="--space") from None
    return space


def parse_stop(value: str | None, option: str) -> Any:
    """A stop as a fraction (``0.05``) or a searched range (``0.01:0.1``)."""
    if value is None:
        return None
    try:
        return parse_range(value) if ":" in value else float(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def redis_for_run(data_dir: Path) -> tuple[str, Any]:
    """REDIS_URL, or an embedded Redis started for this run (and its handle, to stop)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url, None
    from tradebot.embedded import EmbeddedServers

    servers = EmbeddedServers(data_dir)
    return servers.start_redis(), servers


def best_trials_table(summary: Summary, objective: str, top: int) -> Any:
    from rich.table import Table

    rows = sorted(
        (t for t in summary.trials if t["state"] == "complete"),
        key=lambda t: (-(t["value"] or 0.0), t["fold"], t["number"]),
    )[:top]
    names = list(rows[0]["params"]) if rows else []
    table = Table(title=f"Best trials by {objective}")
    folds = len({t["fold"] for t in summary.trials}) > 1
    if folds:
        table.add_column("fold", justify="right")
    table.add_column("trial", justify="right")
    table.add_column(objective, justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for column in ("return", "drawdown", "trades"):
        table.add_column(column, justify="right")
    for trial in rows:
        metrics = trial["metrics"] or {}
        cells = [str(trial["fold"])] if folds else []
        cells += [str(trial["number"]), f"{trial['value']:.4g}"]
        cells += [str(trial["params"].get(name)) for name in names]
        cells += [
            f"{(metrics.get('total_return') or 0) * 100:,.2f} %",
            f"{(metrics.get('max_drawdown') or 0) * 100:,.2f} %",
            str(metrics.get("n_trades")),
        ]
        table.add_row(*cells)
    return table


def folds_table(result: dict[str, Any], objective: str) -> Any:
    from rich.table import Table

    table = Table(title="Walk-forward: in-sample / out-of-sample")
    for column in ("fold", "train", "test", "parameters", f"{objective} in", f"{objective} out"):
        table.add_column(column)
    for fold in result.get("folds") or []:
        best = fold.get("best") or {}

        def fmt(value: Any) -> str:
            return "n/a" if value is None else f"{value:.4g}"

        table.add_row(
            str(fold["fold"]),
            f"{fold['train']['start'][:10]} .. {fold['train']['end'][:10]}",
            f"{fold['test']['start'][:10]} .. {fold['test']['end'][:10]}",
            ", ".join(f"{k}={v}" for k, v in (best.get("params") or {}).items()),
            fmt(best.get("in_sample_value")),
            fmt(best.get("out_of_sample_value")),
        )
    return table


def optimise(
    strategy: Annotated[str, typer.Option(help="Strategy name (see the catalog).")],
    space: Annotated[
        list[str] | None,
        typer.Option(
            "--space",
            help="Searched parameter: name=low:high[:step|:log], name=a,b,c, or name alone "
            "for the range its schema allows. Repeat for each.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Fixed parameter name=value.")
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials (per walk-forward fold); 100 without --timeout.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Time budget in seconds.")] = None,
    objective: Annotated[
        str, typer.Option(help="sharpe, sortino, total_return, calmar or profit_factor.")
    ] = "sharpe",
    min_trades: Annotated[int, typer.Option(help="Fewer trades fail a trial.")] = 5,
    sampler: Annotated[str, typer.Option(help="tpe, random, grid or cmaes.")] = "tpe",
    seed: Annotated[int | None, typer.Option(help="Sampler seed (one worker repeats).")] = None,
    walk_forward: Annotated[
        int | None, typer.Option("--walk-forward", help="Walk-forward folds (2-20).")
    ] = None,
    anchored: Annotated[
        bool, typer.Option(help="Walk-forward training windows all start at the first candle.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
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
    fee: Annotated[float, typer.Option(help="Fee per side, fraction of notional.")] = 0.001,
    slippage: Annotated[float, typer.Option(help="Slippage, fraction against you.")] = 0.0,
    capital: Annotated[str, typer.Option(help="Initial capital (quote currency).")] = "10000",
    size: Annotated[float, typer.Option(help="Position size, fraction of equity.")] = 1.0,
    stop_loss: Annotated[
        str | None, typer.Option(help="Stop loss fraction, or low:high to search it.")
    ] = None,
    take_profit: Annotated[
        str | None, typer.Option(help="Take profit fraction, or low:high to search it.")
    ] = None,
    trailing_stop: Annotated[
        str | None, typer.Option(help="Trailing stop fraction, or low:high to search it.")
    ] = None,
    top: Annotated[int, typer.Option(help="Rows of the best-trials table.")] = 10,
    report: Annotated[
        Path | None, typer.Option(help="HTML report path (default: optimise-report.html).")
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Write no report.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result (no trial table) as JSON.")
    ] = False,
    sim_seed: Annotated[int, typer.Option(help="Seed of the sim exchange.", envvar="SIM_SEED")] = (
        42
    ),
) -> None:
    """Optimise a strategy's parameters (optionally walk-forward) in N worker processes."""
    err = Console(stderr=True)
    out = Console()
    if timeframe not in TIMEFRAME_MS:
        raise typer.BadParameter(f"use one of {', '.join(TIMEFRAME_MS)}", param_hint="--timeframe")
    frame = TIMEFRAME_MS[timeframe]
    end_ms = parse_time(end) if end else int(time.time() * 1000)
    start_ms = parse_time(start) if start else end_ms - 2000 * frame
    if start_ms >= end_ms:
        raise typer.BadParameter("--from must be before --to")

    from pydantic import ValidationError

    from analysis_service.optimisations.folds import shortage
    from analysis_service.optimisations.plan import plan_of
    from analysis_service.optimisations.schemas import StudySettings
    from analysis_service.optimisations.space import SpaceError

    request: dict[str, Any] = {
        "strategy": strategy,
        "parameters": parse_params(param or []),
        "space": parse_space(space or []),
        "initial_capital": capital,
        "fee": fee,
        "slippage": slippage,
        "position_size": size,
        "stop_loss": parse_stop(stop_loss, "--stop-loss"),
        "take_profit": parse_stop(take_profit, "--take-profit"),
        "trailing_stop": parse_stop(trailing_stop, "--trailing-stop"),
        "objective": objective,
        "min_trades": min_trades,
        "n_trials": trials,
        "timeout_s": timeout,
        "sampler": sampler,
        "seed": seed,
        "walk_forward": {"folds": walk_forward, "anchored": anchored} if walk_forward else None,
    }
    try:
        settings = StudySettings.model_validate(request)
        plan = plan_of(settings)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[red]{problems}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    except SpaceError as exc:
        err.print(f"[red]{exc.message}[/]", soft_wrap=True)
        raise typer.Exit(2) from None

    try:
        candles, source = load_candles(
            data=data,
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            start_ms=start_ms,
            end_ms=end_ms,
            seed=sim_seed,
        )
    except CandleSourceError as exc:
        err.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    short = shortage(len(candles), plan.folds, plan.space.warmup, anchored=plan.anchored)
    if short:
        err.print(f"[red]{source}: {short}[/]", soft_wrap=True)
        raise typer.Exit(2)

    summary = _run(settings.model_dump(mode="json"), candles, plan, workers, err, quiet=as_json)
    body = {
        "status": "failed" if summary.error else "done",
        "error": summary.error,
        "strategy": strategy,
        "objective": objective,
        "sampler": plan.sampler,
        "symbol": None if data is not None else symbol,
        "timeframe": None if data is not None else timeframe,
        "result": summary.result,
    }
    report_path = None
    if not no_report:
        from analysis_service.optimisations.report import render_report

        report_path = report or Path("optimise-report.html")
        report_path.write_text(render_report(body, summary.trials), encoding="utf-8")
    if as_json:
        shown = {k: v for k, v in summary.result.items() if k != "backtest"}
        sys.stdout.write(json.dumps({**body, "result": shown}, default=str) + "\n")
        raise typer.Exit(1 if summary.error else 0)
    out.print(best_trials_table(summary, objective, top))
    if plan.folds:
        out.print(folds_table(summary.result, objective))
    if summary.error:
        out.print(f"[red]{summary.error}[/]")
        raise typer.Exit(1)
    best = summary.result["best"]
    params = ", ".join(f"{k}={v}" for k, v in best["params"].items())
    out.print(
        f"Recommended ({best['rule']}): [bold]{params}[/] ({objective} {best['value']:.4g}); "
        f"{len(candles):,} candles from {source}"
        + (f"; report: {report_path}" if report_path else "")
    )


def _run(
    settings: dict[str, Any],
    candles: Candles,
    plan: Any,
    workers: int,
    err: Console,
    *,
    quiet: bool,
) -> Summary:
    """Start the workers, draw the progress bar from the journal, return the summary."""
    from redis import Redis
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from analysis_service.optimisations.process import WorkerDied, WorkerFailed, WorkerProcess
    from analysis_service.optimisations.progress import ProgressReader
    from analysis_service.optimisations.runner import StudyJob, WorkerConfig
    from analysis_service.optimisations.storage import StudyKeys

    key = f"cli-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="tradebot-optimise-") as scratch:
        try:
            url, embedded = redis_for_run(Path(scratch))
        except RuntimeError as exc:
            err.print(f"[red]{exc}[/]", soft_wrap=True)
            raise typer.Exit(1) from None
        redis = Redis.from_url(url)
        try:
            redis.ping()
        except Exception as exc:
            err.print(
                f"[red]Redis at {url} is unreachable ({exc}); the workers share the study "
                "through it: start it (tradebot up) or unset REDIS_URL for an embedded one.[/]",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        job = StudyJob(key, settings, candles, WorkerConfig(redis_url=url))
        processes = [WorkerProcess(job) for _ in range(workers)]
        reader = ProgressReader(redis, key, plan)
        outcomes, lost = [], 0
        try:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=err,
                disable=quiet and not err.is_terminal,
            ) as progress:
                task = progress.add_task("starting workers", total=1.0)
                running = list(processes)
                while running:
                    time.sleep(0.25)
                    for process in list(running):
                        try:
                            outcome = process.outcome()
                        except (WorkerDied, WorkerFailed) as exc:
                            err.print(f"[yellow]worker {process.pid}: {exc}[/]")
                            running.remove(process)
                            lost += 1
                            continue
                        if outcome is not None:
                            outcomes.append(outcome)
                            running.remove(process)
                    seen = reader.read()
                    best = (
                        ""
                        if seen.best_value is None
                        else f"; best {seen.best_value:.4g} with "
                        + ", ".join(f"{k}={v}" for k, v in (seen.best_params or {}).items())
                    )
                    fold = "" if seen.fold is None else f"fold {seen.fold + 1}/{plan.folds}: "
                    total = seen.trials_total
                    progress.update(
                        task,
                        completed=seen.fraction,
                        description=f"{fold}{seen.trials_done}"
                        + (f"/{total}" if total else "")
                        + f" trials{best}",
                    )
        finally:
            for process in processes:
                process.stop()
            redis.delete(*StudyKeys(key).all_keys(plan.studies))
            redis.close()
            if embedded is not None:
                embedded.stop()
    summaries = [o.summary for o in outcomes if o.summary is not None]
    if not summaries:
        err.print(f"[red]every worker stopped before the run ended ({lost} lost)[/]")
        raise typer.Exit(1)
    return summaries[0]
