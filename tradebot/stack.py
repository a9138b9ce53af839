"""`tradebot up`: the whole stack as local processes, with prefixed logs and clean stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.service_client import SERVER_KEEP_ALIVE_S
from shared.settings import SERVICE_PORTS
from tradebot.logstream import LogStream, render_prefix

FACTORIES = {
    "gateway": "gateway.main:create_app",
    "market": "market_service.main:create_app",
    "user": "user_service.main:create_app",
    "trading": "trading_engine.main:create_app",
    "analysis": "analysis_service.main:create_app",
    "notification": "notification_service.main:create_app",
}
# uvicorn WebSocket protocol per service (default "auto"): the market feed's adds a
# raw-frame fast path for its fan-out (market_service/feed/protocol.py).
WS_PROTOCOLS = {"market": "market_service.feed.protocol:FeedWebSocketProtocol"}
# uvicorn HTTP protocol per service (default "auto"): the gateway's runs plain proxied
# requests on a lean request cycle (gateway/server.py).
HTTP_PROTOCOLS = {"gateway": "gateway.server:GatewayHttpProtocol"}
# Start order: the gateway last, once its upstreams listen.
START_ORDER = ["user", "market", "analysis", "trading", "notification", "gateway"]
COLOURS = {
    "gateway": "cyan",
    "market": "green",
    "user": "magenta",
    "trading": "yellow",
    "analysis": "blue",
    "notification": "red",
}


def service_urls(host: str = "127.0.0.1") -> dict[str, str]:
    return {name: f"http://{host}:{port}" for name, port in SERVICE_PORTS.items()}


def upstream_env(urls: dict[str, str]) -> dict[str, str]:
    return {
        "MARKET_SERVICE_URLS": urls["market"],
        "USER_SERVICE_URLS": urls["user"],
        "TRADING_SERVICE_URLS": urls["trading"],
        "ANALYSIS_SERVICE_URLS": urls["analysis"],
        "NOTIFICATION_SERVICE_URLS": urls["notification"],
    }


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def serve_command(service: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        FACTORIES[service],
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--ws-per-message-deflate",
        "false",
        "--ws",
        WS_PROTOCOLS.get(service, "auto"),
        "--http",
        HTTP_PROTOCOLS.get(service, "auto"),
        # X-Forwarded-For is read by the services themselves, from TRUSTED_PROXIES only
        # (shared/forwarding.py); uvicorn's own handling would believe any loopback peer.
        "--no-proxy-headers",
        # Longer than callers keep an idle connection (shared/service_client.py).
        "--timeout-keep-alive",
        str(SERVER_KEEP_ALIVE_S),
    ]


@dataclass
class Child:
    name: str
    port: int
    proc: subprocess.Popen[bytes]


def prefix_renderer(console: Console) -> Callable[[str, str], str]:
    """Renders text in a colour as ``console`` would print it (plain when it has no colour)."""

    def render(text: str, colour: str) -> str:
        with console.capture() as captured:
            console.print(Text(text, style=colour), end="", highlight=False)
        return captured.get()

    return render


def follow_logs(logs: LogStream, child: Child, console: Console) -> None:
    """The child's output into the shared log stream, behind its coloured name."""
    assert child.proc.stdout is not None  # noqa: S101 - started with a pipe
    prefix = render_prefix(prefix_renderer(console), child.name, COLOURS.get(child.name, "white"))
    logs.follow(child.proc.stdout.fileno(), prefix)


def health_table(urls: dict[str, str], timeout: float = 2.0) -> tuple[Table, bool]:
    table = Table(title="TradeBot services")
    for column in ("service", "url", "status", "dependencies"):
        table.add_column(column)
    all_ok = True
    for name, url in urls.items():
        try:
            response = httpx.get(url + "/health", timeout=timeout)
            body = response.json()
            status = body.get("status", "?")
            deps = ", ".join(f"{k}={v}" for k, v in body.get("services", {}).items())
        except (httpx.HTTPError, ValueError):
            status, deps = "unreachable", ""
        ok = status == "healthy"
        all_ok &= ok
        table.add_row(name, url, f"[{'green' if ok else 'red'}]{status}[/]", deps)
    return table, all_ok


def local_secret(data_dir: Path, name: str) -> str:
    """A random secret kept beside the embedded data (stable across runs, so sessions and
    service-to-service calls survive a restart); production sets its own."""
    import secrets

    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def local_env(env: dict[str, str], data_dir: Path) -> dict[str, str]:
    """Secrets a local run generates when the operator set none."""
    if not env.get("ENCRYPTION_KEY"):
        env["ENCRYPTION_KEY"] = local_encryption_key(data_dir)
    if not env.get("JWT_SECRET"):
        env["JWT_SECRET"] = local_secret(data_dir, "jwt.secret")
    if not env.get("INTERNAL_API_TOKEN"):
        env["INTERNAL_API_TOKEN"] = local_secret(data_dir, "internal.token")
    return env


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """One service's environment: the services behind the gateway believe the gateway's
    X-Forwarded-For (it runs on loopback here); the gateway only the operator's proxies."""
    if name == "gateway":
        return env
    proxies = [p for p in (env.get("TRUSTED_PROXIES", ""), "127.0.0.1") if p]
    return {**env, "TRUSTED_PROXIES": ",".join(proxies)}


def local_encryption_key(data_dir: Path) -> str:
    """A Fernet key kept beside the embedded data, so stored exchange keys stay readable
    across runs (production sets ENCRYPTION_KEY itself)."""
    from cryptography.fernet import Fernet

    path = data_dir / "encryption.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def build_dashboard(console: Console) -> None:
    """In a source checkout, (re)build the web dashboard when its sources changed (the same
    scripts/build-web that ./scripts/up runs), so `tradebot up` serves the current one. A
    failed build is reported and the API starts anyway (`/` then says how to build)."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "build-web"
    if os.environ.get("TRADEBOT_SKIP_WEB") == "1" or not script.exists():
        return
    built = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if built.returncode != 0:
        console.print(
            f"[yellow]The web dashboard was not built (the API runs without it):[/] "
            f"{(built.stderr or built.stdout).strip()[-500:]}"
        )


def run_stack(*, data_dir: Path, console: Console, wait_timeout: float = 90.0) -> int:
    """Start everything, wait for health, stream logs until SIGINT/SIGTERM; exit code."""
    from tradebot.embedded import EmbeddedServers, EmbeddedUnavailable
    from tradebot.migrate import upgrade

    urls = service_urls()
    taken = [f"{name} ({port})" for name, port in SERVICE_PORTS.items() if port_in_use(port)]
    if taken:
        console.print(
            f"[red]Cannot start: port(s) already in use: {', '.join(taken)}.[/]\n"
            "Stop whatever listens there (another `tradebot up`?) and try again."
        )
        return 2

    env = dict(os.environ)
    embedded = EmbeddedServers(data_dir)
    children: list[Child] = []
    stopping = threading.Event()
    logs = LogStream(sys.stdout.buffer)

    def _stop(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        try:
            if not env.get("DATABASE_URL"):
                env["DATABASE_URL"] = embedded.start_postgres()
            if not env.get("REDIS_URL"):
                env["REDIS_URL"] = embedded.start_redis()
        except EmbeddedUnavailable as missing:
            console.print(f"[red]{missing}[/]")
            return 2
        for note in embedded.notes:
            console.print(f"[bold]•[/] {note}")
        env.setdefault("MARKET_EXCHANGES", "sim")
        local_env(env, data_dir)
        env.update({k: v for k, v in upstream_env(urls).items() if k not in os.environ})
        build_dashboard(console)
        console.print("[bold]•[/] applying migrations")
        try:
            upgrade(env["DATABASE_URL"])
        except Exception as exc:
            console.print(f"[red]Migrations failed: {exc}[/]")
            return 1
        for name in START_ORDER:
            proc = subprocess.Popen(
                serve_command(name, SERVICE_PORTS[name]),
                env=service_env(name, env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            child = Child(name, SERVICE_PORTS[name], proc)
            children.append(child)
            follow_logs(logs, child, console)
        deadline = time.monotonic() + wait_timeout
        while not stopping.is_set():
            table, ok = health_table(urls, timeout=1.0)
            if ok or time.monotonic() > deadline:
                console.print(table)
                console.print(
                    "[green]All six services are healthy.[/] Gateway: "
                    f"{urls['gateway']}  (Ctrl-C stops everything)"
                    if ok
                    else "[yellow]Some services are not healthy yet; see the logs.[/]"
                )
                break
            if any(c.proc.poll() is not None for c in children):
                dead = [c.name for c in children if c.proc.poll() is not None]
                console.print(f"[red]Service(s) exited: {', '.join(dead)}[/]")
                return 1
            time.sleep(0.5)
        while not stopping.is_set():
            if any(c.proc.poll() is not None for c in children):
                dead = [c.name for c in children if c.proc.poll() is not None]
                console.print(f"[red]Service(s) exited: {', '.join(dead)}; stopping.[/]")
                return 1
            stopping.wait(0.5)
        return 0
    finally:
        console.print("[bold]•[/] stopping services")
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(5)
        embedded.stop()
        logs.close()
        console.print("[bold]•[/] stopped")
