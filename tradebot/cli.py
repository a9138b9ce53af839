"""The `tradebot` command line: one typer app holding every operator command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shared.settings import SERVICE_PORTS

app = typer.Typer(
    help="TradeBot: self-hosted multi-user crypto trading bots.", no_args_is_help=True
)
console = Console()


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Where embedded servers keep data.")] = Path(
        ".tradebot"
    ),
) -> None:
    """Start the whole stack (embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset)."""
    from tradebot.stack import run_stack

    raise typer.Exit(run_stack(data_dir=data_dir.resolve(), console=console))


@app.command()
def status(
    host: Annotated[str, typer.Option(help="Host the services listen on.")] = "127.0.0.1",
) -> None:
    """Print the health of each service."""
    from tradebot.stack import health_table, service_urls

    table, ok = health_table(service_urls(host))
    console.print(table)
    raise typer.Exit(0 if ok else 1)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICE_PORTS)}.")],
    port: Annotated[int | None, typer.Option(help="Port (default: the service's own).")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Run one service, as the containers run it."""
    from tradebot.stack import FACTORIES, serve_command

    if service not in FACTORIES:
        console.print(f"[red]Unknown service {service!r}; choose one of {', '.join(FACTORIES)}.[/]")
        raise typer.Exit(2)
    command = serve_command(service, port or SERVICE_PORTS[service], host)
    # The service refuses placeholder secrets when it listens beyond loopback.
    os.environ["BIND_HOST"] = host
    os.execv(command[0], command)  # noqa: S606 - replaces this process with uvicorn


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to REVISION instead.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Migrate nothing: wait until the database is at this code's head (a "
            "Kubernetes init container waiting for the migration Job).",
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 600.0,
) -> None:
    """Apply the database migrations (DATABASE_URL)."""
    from shared.settings import ServiceSettings
    from tradebot.migrate import downgrade, upgrade, wait_for_head

    url = ServiceSettings().database_url
    if wait:
        if not wait_for_head(url, timeout_s=timeout):
            console.print(f"[red]The database did not reach head within {timeout:g} s.[/]")
            raise typer.Exit(1)
        console.print("[green]Database at head.[/]")
        return
    (downgrade if down else upgrade)(url, revision if not (down and revision == "head") else "base")
    console.print(f"[green]Database at {'base' if down else revision}.[/]")


from tradebot.backfill import backfill  # noqa: E402 - registered after the core commands

app.command()(backfill)

from tradebot.backtest import backtest, lookahead  # noqa: E402 - the analysis commands

app.command()(backtest)
app.command()(lookahead)

from tradebot.optimise import optimise  # noqa: E402 - strategy optimisation

app.command()(optimise)
