"""Gateway overhead: requests/s and p50/p99 latency through the gateway (auth and rate
limit on, limit raised for the run) vs straight to the same upstream, in one run.

    .venv/bin/python bench/gateway.py [--duration 10] [--connections 64] [--threads 2]
                                      [--traced]

``--traced`` adds, in the same run, the same gateway exporting a span per request over
OTLP/HTTP (every request traced, then one in ten) to an in-memory collector in this
process (tests/otlp_collector.py), with the batch queue large enough that no span is
dropped: the cost of tracing when it is on.

Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/0; the run's keys are removed
afterwards). The load generator is wrk (`apt-get install -y wrk`); without it the script
says so and falls back to a Python (aiohttp) load generator in a separate process, whose
own overhead makes both figures lower. Target: the gateway keeps >= 60% of direct
throughput and adds < 2 ms at p50. Figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tradebot.stack import HTTP_PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-that-is-long-enough-for-hs256"  # noqa: S105 - a throwaway bench key
PATH = "/trading/ping"


def upstream_app():  # type: ignore[no-untyped-def]
    """The small JSON upstream both runs hit (a FastAPI route, like the services)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    @app.get("/market/ping")
    @app.get(PATH)
    async def ping() -> dict[str, object]:
        return {"ok": True, "service": "bench", "items": [1, 2, 3]}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url} exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            httpx.get(url + "/health", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *args, "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def open_session(redis_url: str) -> tuple[str, list[str]]:
    """A live session and an access token of the shape the user service issues."""
    import jwt
    from redis.asyncio import Redis

    user_id, sid, now = str(uuid.uuid4()), uuid.uuid4().hex, int(time.time())
    redis = Redis.from_url(redis_url)
    key = f"user:session:{sid}"
    await redis.hset(
        key, mapping={"userId": user_id, "expiresAt": now + 3600, "permissions": "trade:paper"}
    )
    await redis.expire(key, 3600)
    await redis.aclose()
    claims = {
        "sub": user_id,
        "sid": sid,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "perms": ["trade:paper"],
    }
    return jwt.encode(claims, SECRET, algorithm="HS256"), [key, f"gateway:ratelimit:user:{user_id}"]


async def delete_keys(redis_url: str, keys: list[str]) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.delete(*keys)
    await redis.aclose()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, token: str, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration:g}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    lat = {p: _ms(*re.match(r"([\d.]+)(\w+)", v).groups()) for p, v in found.items()}  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p99": lat["99"],
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def python_load(url: str, token: str, connections: int, duration: float) -> dict[str, float]:
    """Fallback load generator (runs in its own process): closed loop, one task per connection."""
    import aiohttp

    async def main() -> dict[str, float]:
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + duration
        headers = {"Authorization": f"Bearer {token}"}
        conn = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def worker() -> None:
                nonlocal errors
                while (now := time.perf_counter()) < stop_at:
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - now)

            await asyncio.gather(*(worker() for _ in range(connections)))
        latencies.sort()
        return {
            "rps": len(latencies) / duration,
            "errors": float(errors),
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        }

    return asyncio.run(main())


def cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """User + system CPU of a server process and its workers so far."""
    import psutil

    root = psutil.Process(proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def measure(
    url: str, token: str, args: argparse.Namespace, servers: dict[str, subprocess.Popen[bytes]]
) -> dict[str, float]:
    """Load figures, plus the CPU each server spent per request (robust to a busy machine)."""
    if shutil.which("wrk"):
        warm = argparse.Namespace(**{**vars(args), "duration": 2})
        run_wrk(url, token, warm)
    before = {name: cpu_seconds(proc) for name, proc in servers.items()}
    if shutil.which("wrk"):
        result = run_wrk(url, token, args)
    else:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--python-load",
                url,
                "--token",
                token,
                "--connections",
                str(args.connections),
                "--duration",
                str(args.duration),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result = dict(json.loads(out))
    requests = max(1.0, result["rps"] * args.duration)
    for name, proc in servers.items():
        result[f"cpu_us_{name}"] = (cpu_seconds(proc) - before[name]) / requests * 1e6
    return result


def measure_traced(
    start_gateway: Any, upstream: subprocess.Popen[bytes], token: str, args: argparse.Namespace
) -> tuple[dict[str, dict[str, float]], int]:
    """The same gateway exporting its spans over OTLP: every request traced, then one in
    ten (OTEL_TRACES_SAMPLER_ARG). Returns the rows and the spans the collector received."""
    from tests.otlp_collector import OtlpCollector

    rows: dict[str, dict[str, float]] = {}
    with OtlpCollector() as collector:
        for label, ratio in (("traced, every request", "1"), ("traced, one in ten", "0.1")):
            port = free_port()
            gateway = start_gateway(
                port,
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                    "OTEL_TRACES_SAMPLER_ARG": ratio,
                    # Export everything (no span dropped), in batches twice a second.
                    "OTEL_BSP_MAX_QUEUE_SIZE": "200000",
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096",
                    "OTEL_BSP_SCHEDULE_DELAY": "500",
                },
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_listening(url, gateway)
                rows[label] = measure(
                    url + PATH, token, args, {"upstream": upstream, "gateway": gateway}
                )
            finally:
                gateway.terminate()  # flushes what is left
                gateway.wait(30)
        return rows, len(collector.spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gateway-workers", type=int, default=1)
    parser.add_argument("--python-load", metavar="URL")
    parser.add_argument("--token", default="")
    parser.add_argument("--traced", action="store_true", help="also measure with traces on")
    args = parser.parse_args()
    if args.python_load:
        print(
            json.dumps(python_load(args.python_load, args.token, args.connections, args.duration))
        )
        return

    if not shutil.which("wrk"):
        print(
            "wrk is not installed (apt-get install -y wrk); falling back to a Python load "
            "generator in a separate process: absolute figures will be lower.\n"
        )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    env = {**os.environ, "JWT_SECRET": SECRET, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO"}
    up_port, gw_port = free_port(), free_port()
    upstream_url, gateway_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    upstream = start(["--factory", "bench.gateway:upstream_app", "--port", str(up_port)], env)
    gateway_env = {
        **env,
        "TRADING_SERVICE_URLS": upstream_url,
        "RATE_LIMIT_PER_MINUTE": "1000000000",
        "HEALTH_INCLUDE_UPSTREAMS": "false",
    }

    def start_gateway(port: int, extra: dict[str, str]) -> subprocess.Popen[bytes]:
        return start(
            [
                "--factory",
                "gateway.main:create_app",
                "--port",
                str(port),
                "--workers",
                str(args.gateway_workers),
                "--http",
                HTTP_PROTOCOLS["gateway"],
            ],
            {**gateway_env, **extra},
        )

    gateway = start_gateway(gw_port, {})
    token, keys = asyncio.run(open_session(redis_url))
    traced: dict[str, dict[str, float]] = {}
    spans_received = 0
    try:
        wait_listening(upstream_url, upstream)
        wait_listening(gateway_url, gateway)
        direct = measure(upstream_url + PATH, token, args, {"upstream": upstream})
        through = measure(
            gateway_url + PATH, token, args, {"upstream": upstream, "gateway": gateway}
        )
        if args.traced:
            traced, spans_received = measure_traced(start_gateway, upstream, token, args)
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(15)
        asyncio.run(delete_keys(redis_url, keys))

    tool = "wrk" if shutil.which("wrk") else "python/aiohttp"
    print(
        f"load: {tool}, {args.connections} connections, {args.duration:g} s; "
        "upstream: FastAPI JSON route on uvicorn; gateway: auth + rate limit on, logs on"
    )
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    rows = [("direct to upstream", direct), ("through the gateway", through), *traced.items()]
    for name, r in rows:
        print(f"{name:24}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>10.0f}")
    ratio = through["rps"] / direct["rps"]
    added = through["p50"] - direct["p50"]
    print(
        f"\nthroughput kept: {ratio:.2f} of direct (target >= 0.60: "
        f"{'met' if ratio >= 0.6 else 'NOT met'})"
    )
    print(f"p50 added: {added:.2f} ms (target < 2 ms: {'met' if added < 2 else 'NOT met'})")
    print(
        f"CPU per request: upstream {direct['cpu_us_upstream']:.0f} us direct, "
        f"{through['cpu_us_upstream']:.0f} us behind the gateway; "
        f"gateway {through['cpu_us_gateway']:.0f} us (all workers). Throughput on this "
        f"{os.cpu_count()}-core machine is bounded by the sum, shared with wrk and whatever "
        "else runs."
    )
    for name, r in traced.items():
        print(
            f"{name}: gateway {r['cpu_us_gateway']:.0f} us of CPU per request "
            f"({r['cpu_us_gateway'] - through['cpu_us_gateway']:+.0f} us), "
            f"{r['rps'] / through['rps']:.2f} of the untraced gateway's throughput, "
            f"p50 {r['p50'] - through['p50']:+.2f} ms"
        )
    if traced:
        print(f"spans received by the collector: {spans_received}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
