"""The services' busiest routes: requests/s and p50/p99 straight to each service, beside a
minimal FastAPI app doing the same I/O (bench/service_reference.py) in the same run, and
through the gateway.

    .venv/bin/python -m bench.services [--duration 5] [--rounds 3] [--connections 64]
        [--routes ticker,ohlcv,...] [--logs stream|off] [--profile ROUTE]

Every service runs as `tradebot up` runs it (same uvicorn command, INFO request lines, its
output read through the same log stream, here into a file), on a scratch database and
Redis index (bench/stores.py). Runs alternate service / reference / gateway for each route,
``--rounds`` times, so a busy machine slows all three alike; the ratios are printed as a
range over the rounds. Targets: reads >= 0.7 of their reference, the paper order >= 0.5;
through the gateway >= 0.7 of direct. ``--log-check`` then measures the ticker with the
service's output through the log stream, discarded, and into an output that never drains
(the stream drops lines instead of blocking the service). ``--profile ROUTE`` samples the
service with py-spy (``pip install -e '.[bench]'``) during one run of ROUTE and prints where
its time went. Needs wrk (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.stores import ScratchStores
from shared.redis import create_redis
from tests.factories import create_user
from tests.servers import free_port
from tests.stores import TEST_ENCRYPTION_KEY, TEST_INTERNAL_TOKEN, TEST_JWT_SECRET
from tradebot.logstream import LogStream
from tradebot.stack import serve_command

ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTC/USDT"
ORDER_BODY = (
    '{"exchange":"sim","symbol":"BTC/USDT","side":"%s","type":"market",'
    '"quantity":"0.001","mode":"paper"}'
)


@dataclass
class Route:
    name: str
    service: str
    path: str
    method: str = "GET"
    write: bool = False

    @property
    def target(self) -> float:
        return 0.5 if self.write else 0.7


ROUTES = [
    Route("ticker", "market", f"/market/ticker?symbol={SYMBOL}&exchange=sim"),
    Route(
        "ohlcv",
        "market",
        f"/market/ohlcv?symbol={SYMBOL}&exchange=sim&timeframe=1h&limit=500",
    ),
    Route("user_me", "user", "/user/me"),
    Route("orders", "trading", "/trading/orders?limit=50"),
    Route("balances", "trading", "/trading/balances"),
    Route("notifications", "notification", "/notifications?limit=50"),
    Route(
        "indicators",
        "analysis",
        f"/analysis/indicators?symbol={SYMBOL}&exchange=sim&indicators=sma:20,rsi:14",
    ),
    Route("place_order", "trading", "/trading/orders", method="POST", write=True),
]


@dataclass
class Proc:
    name: str
    url: str
    popen: subprocess.Popen[bytes]


@dataclass
class Figures:
    runs: dict[str, list[dict[str, float]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )


def start(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str],
    logs: LogStream | None,
    prefix: bytes | None = None,
) -> Proc:
    popen = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if logs is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if logs is not None else subprocess.DEVNULL,
    )
    if logs is not None:
        assert popen.stdout is not None
        logs.follow(popen.stdout.fileno(), prefix or f"{name:>12} | ".encode())
    return Proc(name, f"http://127.0.0.1:{port}", popen)


def wait_healthy(procs: list[Proc], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        while True:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}); see the log")
            try:
                if httpx.get(proc.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not become healthy")
            time.sleep(0.2)


def stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.terminate()
    for proc in procs:
        try:
            proc.popen.wait(15)
        except subprocess.TimeoutExpired:
            proc.popen.kill()


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


WRITERS = 16  # users placing orders in the write runs (one user's orders lock one row)


def post_script(tokens: list[str]) -> str:
    """wrk script: paper market orders, buys and sells alternating, each request from the
    next of ``tokens``' users in turn."""
    buy, sell = ORDER_BODY % "buy", ORDER_BODY % "sell"
    listed = ", ".join(f"'{t}'" for t in tokens)
    return (
        "local n = 0\n"
        f"local tokens = {{{listed}}}\n"
        f"local bodies = {{'{buy}', '{sell}'}}\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  local headers = {['Content-Type'] = 'application/json',\n"
        "    ['Authorization'] = 'Bearer ' .. tokens[n % #tokens + 1]}\n"
        "  return wrk.format('POST', nil, headers, bodies[math.floor(n / #tokens) % 2 + 1])\n"
        "end\n"
    )


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def measure(
    url: str, token: str, route: Route, args: argparse.Namespace, pids: list[int]
) -> dict[str, float]:
    """wrk figures, plus the CPU the serving processes spent per request (steadier than
    requests/s when other work shares the machine)."""
    before = cpu_seconds(pids)
    result = run_wrk(url, token, route, args)
    result["cpu_us"] = (cpu_seconds(pids) - before) / max(result["requests"], 1.0) * 1e6
    return result


def run_wrk(
    url: str, token: str, route: Route, args: argparse.Namespace, duration: float | None = None
) -> dict[str, float]:
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration or args.duration:g}s",
        # Far past any p99 here: with wrk's 2 s default a busy machine turned slow replies
        # into abandoned ones (the server still did the work, nobody counted it).
        "--timeout",
        "15s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token.split(',')[0]}",
    ]
    script = None
    if route.method == "POST":
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(post_script(token.split(",")))
        script.close()
        command += ["-s", script.name]
    try:
        out = subprocess.run(
            [*command, url + route.path], capture_output=True, text=True, check=True
        ).stdout
    finally:
        if script is not None:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(found["50"]),
        "p99": _ms(found["99"]),
        "requests": float(total.group(1)) if total else 0.0,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(map(int, errors.groups()))) if errors else 0.0,
    }


async def seed(urls: dict[str, str], database_url: str, redis_url: str) -> dict[str, Any]:
    """A user with a live session, 50 orders, 50 notifications, the caches warm."""
    from shared.db import create_engine, create_sessionmaker

    engine = create_engine(database_url, pool_size=2)
    redis = create_redis(redis_url)
    sessions = create_sessionmaker(engine, redis)
    async with sessions() as session:
        user = await create_user(session, redis, permissions=("trade:paper",))
        reference_user = await create_user(session, redis, permissions=("trade:paper",))
        writers = [await create_user(session, redis) for _ in range(2 * WRITERS)]
    # Long-lived tokens for the run (the factory's are 15 minutes).
    for who in (user, reference_user, *writers):
        await redis.expire(f"user:session:{who.session_id}", 3 * 3600)
    headers = user.headers
    async with httpx.AsyncClient(timeout=30) as client:
        for route in ROUTES:
            if route.name in ("ticker", "ohlcv", "indicators"):
                response = await client.get(urls[route.service] + route.path, headers=headers)
                response.raise_for_status()
        for n in range(50):
            response = await client.post(
                urls["trading"] + "/trading/orders",
                headers={**headers, "Content-Type": "application/json"},
                content=ORDER_BODY % ("buy" if n % 2 == 0 else "sell"),
            )
            assert response.status_code == 201, response.text
        for writer in writers:  # each writer's wallet and position exist (the reference's too)
            response = await client.post(
                urls["trading"] + "/trading/orders",
                headers={**writer.headers, "Content-Type": "application/json"},
                content=ORDER_BODY % "buy",
            )
            assert response.status_code == 201, response.text
    async with engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text(
                "INSERT INTO notifications (user_id, event_id, kind, title, body, data) "
                "SELECT :user, gen_random_uuid(), 'order.filled', 'Order filled', "
                "'Bought 0.0001 BTC/USDT at 60000', '{\"symbol\": \"BTC/USDT\"}'::jsonb "
                "FROM generate_series(1, 50)"
            ),
            {"user": user.id},
        )
    fields = await redis.hkeys(f"analysis:indicators:sim:{SYMBOL}:1h")
    await redis.aclose()
    await engine.dispose()
    return {
        "token": user.token,
        "reference_token": reference_user.token,
        "writers": ",".join(w.token for w in writers[:WRITERS]),
        "reference_writers": ",".join(w.token for w in writers[WRITERS:]),
        "indicator_field": fields[0],
    }


async def same_shapes(urls: dict[str, str], ref_url: str, token: str, ref_token: str) -> None:
    """Each read route of the reference answers the service's shape (the same top-level
    keys: e.g. the paging envelope of a list), so both do the same work."""
    async with httpx.AsyncClient(timeout=30) as client:
        for route in ROUTES:
            if route.write:
                continue
            got = []
            for url, who in ((urls[route.service], token), (ref_url, ref_token)):
                response = await client.get(
                    url + route.path, headers={"Authorization": f"Bearer {who}"}
                )
                response.raise_for_status()
                body = response.json()
                got.append(sorted(body) if isinstance(body, dict) else type(body).__name__)
            if got[0] != got[1]:
                raise RuntimeError(f"{route.name}: service {got[0]}, reference {got[1]}")


def fmt_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if abs(hi - lo) < 0.005 else f"{lo:.2f}-{hi:.2f}"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def profile(proc: Proc, url: str, token: str, route: Route, args: argparse.Namespace) -> None:
    """py-spy samples of the service during one run of ``route``: the frames with the
    largest share of the samples (inclusive), and the file with every stack."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(tempfile.gettempdir()) / f"bench-services-{route.name}.txt"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(proc.popen.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--duration",
            str(int(args.duration)),
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    run_wrk(url, token, route, args)
    spy.wait(60)
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # a frame name with a line break in it
        samples = int(count)
        total += samples
        seen = set()
        for frame in stack.split(";"):
            name = re.sub(r" \(.*?/(site-packages|speed)/", " (", frame)
            key = name.split(" (")[0] + " (" + name.split(" (")[-1] if " (" in name else name
            if key not in seen:
                seen.add(key)
                inclusive[key] += samples
    print(f"\npy-spy, {route.name} on the {route.service} service ({total} samples, {out}):")
    for frame, samples in inclusive.most_common(45):
        print(f"  {100 * samples / total:5.1f}%  {frame[:150]}")


async def main(args: argparse.Namespace) -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    wanted = [r for r in ROUTES if not args.routes or r.name in args.routes.split(",")]
    stores = await ScratchStores.open()
    log_path = Path(tempfile.gettempdir()) / "bench-services.log"
    log_file = log_path.open("wb")
    logs = LogStream(log_file) if args.logs == "stream" else None
    ports = {
        name: free_port()
        for name in ("user", "market", "analysis", "trading", "notification", "gateway")
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **os.environ,
        "DATABASE_URL": stores.database_url,
        "REDIS_URL": stores.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "INTERNAL_API_TOKEN": TEST_INTERNAL_TOKEN,  # the engine calls /user/internal
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "INFO",  # as `tradebot up`: one request line per request
        "MARKET_EXCHANGES": "sim",
        # Cache hits for the whole run: the figures are of the hit path.
        "TICKER_TTL_SECONDS": "86400",
        "OHLCV_TTL_SECONDS": "86400",
        "INDICATORS_CACHE_TTL_S": "86400",
        "PAPER_WALLET_AMOUNT": "1000000000",
        "RATE_LIMIT_ENABLED": "false",
        "MARKET_SERVICE_URLS": urls["market"],
        "USER_SERVICE_URLS": urls["user"],
        "TRADING_SERVICE_URLS": urls["trading"],
        "ANALYSIS_SERVICE_URLS": urls["analysis"],
        "NOTIFICATION_SERVICE_URLS": urls["notification"],
    }
    procs: dict[str, Proc] = {}
    try:
        for name in ("user", "market", "analysis", "trading", "notification", "gateway"):
            procs[name] = start(name, serve_command(name, ports[name]), ports[name], env, logs)
            if name != "gateway":
                await asyncio.to_thread(wait_healthy, [procs[name]])
        await asyncio.to_thread(wait_healthy, [procs["gateway"]])
        seeded = await seed(urls, stores.database_url, stores.redis_url)
        ref_port = free_port()
        ref_env = {
            **env,
            "REF_DATABASE_URL": stores.database_url,
            "REF_REDIS_URL": stores.redis_url,
            "REF_JWT_SECRET": TEST_JWT_SECRET,
            "REF_INDICATOR_FIELD": seeded["indicator_field"],
        }
        ref_command = serve_command("user", ref_port)
        ref_command[ref_command.index("user_service.main:create_app")] = (
            "bench.service_reference:create_app"
        )
        procs["reference"] = start("reference", ref_command, ref_port, ref_env, logs)
        await asyncio.to_thread(wait_healthy, [procs["reference"]])
        token, ref_token = seeded["token"], seeded["reference_token"]
        await same_shapes(urls, procs["reference"].url, token, ref_token)
        print(
            f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, wrk -t{args.threads}"
            f" -c{args.connections}, {args.duration:g} s per run, {args.rounds} rounds, "
            f"service output: {args.logs}"
        )
        if args.profile:
            route = next(r for r in ROUTES if r.name == args.profile)
            proc = procs[route.service]
            await asyncio.to_thread(run_wrk, proc.url, token, route, args, 2)
            await asyncio.to_thread(profile, proc, proc.url, token, route, args)
            return
        figures = Figures()
        for route in wanted:
            service = procs[route.service]
            targets = [
                ("service", service.url, token, [service.popen.pid]),
                ("reference", procs["reference"].url, ref_token, [procs["reference"].popen.pid]),
            ]
            if not route.write:
                targets.append(
                    ("gateway", procs["gateway"].url, token, [procs["gateway"].popen.pid])
                )
            for _label, url, who, _pids in targets:  # warm every connection pool and cache
                await asyncio.to_thread(run_wrk, url, who, route, args, 1)
            for _ in range(args.rounds):
                for label, url, who, pids in targets:
                    result = await asyncio.to_thread(measure, url, who, route, args, pids)
                    figures.runs[f"{route.name}:{label}"].append(result)
            report_route(route, figures)
        if args.log_check:
            await log_check(env, token, args)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        stop(list(procs.values()))
        if logs is not None:
            logs.close()
        log_file.close()
        await stores.close()


def report_route(route: Route, figures: Figures) -> None:
    service = figures.runs[f"{route.name}:service"]
    reference = figures.runs[f"{route.name}:reference"]
    gateway = figures.runs.get(f"{route.name}:gateway", [])

    def mid(runs: list[dict[str, float]], key: str) -> float:
        return median([r[key] for r in runs])

    pairs = list(zip(service, reference, strict=True))
    ratios = [s["rps"] / max(r["rps"], 0.01) for s, r in pairs]
    cpu_ratios = [r["cpu_us"] / max(s["cpu_us"], 0.01) for s, r in pairs]
    line = (
        f"{route.method:<4} {route.path.split('?')[0]:<21}"
        f" service {mid(service, 'rps'):>6,.0f}/s p50 {mid(service, 'p50'):6.1f}"
        f" p99 {mid(service, 'p99'):6.1f} ms"
        f" | reference {mid(reference, 'rps'):>6,.0f}/s p50 {mid(reference, 'p50'):6.1f}"
        f" p99 {mid(reference, 'p99'):6.1f} ms"
        f" | ratio {fmt_range(ratios)} (target {route.target})"
        f" | CPU/request {mid(service, 'cpu_us'):5.0f} vs {mid(reference, 'cpu_us'):5.0f} us"
        f" ({fmt_range(cpu_ratios)})"
    )
    if gateway:
        via = [g["rps"] / max(s["rps"], 0.01) for g, s in zip(gateway, service, strict=True)]
        line += (
            f" | gateway {mid(gateway, 'rps'):>6,.0f}/s p50 {mid(gateway, 'p50'):6.1f} ms,"
            f" {fmt_range(via)} of direct (gateway CPU/request {mid(gateway, 'cpu_us'):4.0f} us)"
        )
    bad = sum(int(r["non2xx"] + r["socket_errors"]) for r in service + gateway)
    bad_ref = sum(int(r["non2xx"] + r["socket_errors"]) for r in reference)
    if bad or bad_ref:
        line += f" | errors: service/gateway {bad}, reference {bad_ref}"
    print(line, flush=True)


async def log_check(env: dict[str, str], token: str, args: argparse.Namespace) -> None:
    """The ticker route of three more market services, alternating: output discarded, through
    the log stream into a file, and through the log stream into a pipe nobody reads."""
    route = ROUTES[0]
    stalled_read, stalled_write = os.pipe()  # never read: a terminal that stopped scrolling
    sinks = {
        "off (stdout to /dev/null)": None,
        "log stream into a file": LogStream(open(os.devnull, "wb")),
        "log stream, output never drains": LogStream(os.fdopen(stalled_write, "wb")),
    }
    procs: dict[str, Proc] = {}
    try:
        for label, sink in sinks.items():
            port = free_port()
            procs[label] = start("market", serve_command("market", port), port, env, sink)
        await asyncio.to_thread(wait_healthy, list(procs.values()))
        runs: dict[str, list[float]] = collections.defaultdict(list)
        for proc in procs.values():
            await asyncio.to_thread(run_wrk, proc.url, token, route, args, 1)
        for _ in range(args.rounds):
            for label, proc in procs.items():
                result = await asyncio.to_thread(run_wrk, proc.url, token, route, args)
                runs[label].append(result["rps"])
        print("\nGET /market/ticker with the service's log output:")
        base = runs["off (stdout to /dev/null)"]
        for label, values in runs.items():
            ratios = [v / b for v, b in zip(values, base, strict=True)]
            print(f"  {label:<34} {median(values):>7,.0f}/s  {fmt_range(ratios)} of off")
        stalled = sinks["log stream, output never drains"]
        assert stalled is not None
        print(
            f"  (the never-draining stream dropped {stalled.dropped:,} lines, "
            "reported in its output)"
        )
    finally:
        stop(list(procs.values()))
        os.close(stalled_read)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--routes", default="", help="comma-separated names (default: all)")
    parser.add_argument("--logs", choices=["stream", "off"], default="stream")
    parser.add_argument("--log-check", action="store_true")
    parser.add_argument("--profile", metavar="ROUTE")
    asyncio.run(main(parser.parse_args()))
