"""Live-feed benchmark: ticks delivered per second and tick-to-client latency over
``WS /market/ws`` for 100, 1 000 and 2 000 subscribers, straight to the market service and
through the gateway, plus cached ``GET /market/ticker`` requests per second.

Side by side with a reference measured the same way on the same machine: a bare Starlette
app that sends a 204-byte tick to every client at the same rate straight from one loop
(no Redis, no queues). Both servers run under uvicorn with per-message deflate off, as
``tradebot up`` runs them; clients run in separate processes (websockets, no compression).
Latency = client receive time - the tick's own timestamp (the sim runs at SIM_SPEED=1, so a
tick's timestamp is the moment it was generated).

    .venv/bin/python -m bench.feed [--seconds 5] [--sizes 100,1000,2000] [--gateway-sizes 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from bench.stores import ScratchStores
from shared.redis import create_redis
from tests.conftest import (
    TEST_ENCRYPTION_KEY,
    TEST_JWT_SECRET,
)
from tests.servers import ServiceProcess, free_port

SYMBOL = "BTC/USDT"
CLIENT_PROCESSES = 2
TICK_INTERVAL = 0.1  # 10 ticks/s, the target of the issue
GRACE = 5.0  # seconds after the window during which its ticks may still arrive


# -- the reference server ------------------------------------------------------------------


def reference_app() -> Any:
    """A bare Starlette app: one loop sends each 204-byte tick to every client."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    clients: set[WebSocket] = set()

    async def ticker(_request: Any) -> JSONResponse:
        return JSONResponse({"exchange": "sim", "symbol": SYMBOL, "price": 1.0})

    async def feed(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()  # the subscribe frame
        await ws.send_text('{"type":"subscribed"}')
        clients.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            clients.discard(ws)

    async def loop() -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            body = {
                "type": "ticker",
                "exchange": "sim",
                "symbol": SYMBOL,
                "price": 60000.12,
                "bid": 60000.01,
                "ask": 60000.23,
                "volume": 12345.678,
                "change": -1.2345,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            frame = orjson.dumps(body).decode()
            frame = frame[:-1] + "," + '"pad":"' + "x" * max(0, 204 - len(frame) - 9) + '"}'
            for ws in list(clients):
                try:
                    await ws.send_text(frame)
                except Exception:
                    clients.discard(ws)

    async def lifespan(_app: Any):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(loop())
        yield
        task.cancel()

    from contextlib import asynccontextmanager

    return Starlette(
        routes=[Route("/market/ticker", ticker), WebSocketRoute("/market/ws", feed)],
        lifespan=asynccontextmanager(lifespan),
    )


# -- client processes ----------------------------------------------------------------------


def _client_process(url: str, n: int, ready: Any, start: Any, results: Any) -> None:
    asyncio.run(_clients(url, n, ready, start, results))


async def _clients(url: str, n: int, ready: Any, start: Any, results: Any) -> None:
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(50)
    subscribe = orjson.dumps({"op": "subscribe", "symbols": [SYMBOL], "exchange": "sim"})

    async def one() -> Any:
        async with gate:
            ws = await connect(url, compression=None, max_queue=None, open_timeout=60)
            await ws.send(subscribe.decode())
            while orjson.loads(await ws.recv())["type"] != "subscribed":
                pass
            return ws

    sockets = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    live = [s for s in sockets if not isinstance(s, BaseException)]
    ready.put(len(live))
    begin, end = await asyncio.to_thread(start.get)
    latencies: list[float] = []
    counts = [0] * len(live)
    stamps: set[str] = set()

    async def read(i: int, ws: Any) -> None:
        while True:
            left = end + GRACE - time.time()  # late ticks of the window still count
            if left <= 0:
                return
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except (TimeoutError, Exception):
                return
            now = time.time() * 1000
            frame = orjson.loads(raw)
            if frame.get("type") != "ticker":
                continue
            at = datetime.fromisoformat(frame["timestamp"].replace("Z", "+00:00")).timestamp()
            if begin <= at < end:
                counts[i] += 1
                latencies.append(now - at * 1000)
                if i == 0:
                    stamps.add(frame["timestamp"])

    await asyncio.gather(*(read(i, ws) for i, ws in enumerate(live)))
    results.put({"counts": counts, "latencies": latencies, "stamps": sorted(stamps)})
    await asyncio.gather(*(ws.close() for ws in live), return_exceptions=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_clients(url: str, n: int, seconds: float, server_pid: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    per = [
        n // CLIENT_PROCESSES + (1 if i < n % CLIENT_PROCESSES else 0)
        for i in range(CLIENT_PROCESSES)
    ]
    procs = [
        ctx.Process(target=_client_process, args=(url, k, ready, start, results)) for k in per if k
    ]
    for p in procs:
        p.start()
    connected = sum(ready.get(timeout=180) for _ in procs)
    begin = time.time() + 1.0
    for _ in procs:
        start.put((begin, begin + seconds))
    time.sleep(max(0.0, begin - time.time()))
    cpu_before = _cpu(server_pid)
    time.sleep(seconds)
    cpu_used = _cpu(server_pid) - cpu_before
    parts = [results.get(timeout=seconds + GRACE + 120) for _ in procs]
    for p in procs:
        p.join(10)
    counts = [c for part in parts for c in part["counts"]]
    latencies = [x for part in parts for x in part["latencies"]]
    published = max(len(part["stamps"]) for part in parts)
    expected = published * connected
    return {
        "connected": connected,
        "server_cpu": cpu_used / seconds,
        "published_per_s": published / seconds,
        "delivered_per_s": sum(counts) / seconds,
        "delivered_ratio": sum(counts) / expected if expected else 0.0,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
    }


def line(label: str, r: dict[str, Any]) -> str:
    return (
        f"  {label:<28} clients {r['connected']:>5}"
        f"  ticks/s delivered {r['delivered_per_s']:>8,.0f}"
        f"  (published {r['published_per_s']:.1f}/s, {100 * r['delivered_ratio']:.1f}% delivered)"
        f"  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms"
        f"  server CPU {100 * r['server_cpu']:.0f}%"
    )


async def ticker_rate(base: str, seconds: float, concurrency: int = 50) -> float:
    done = 0
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                response = await client.get("/market/ticker", params={"symbol": SYMBOL})
                if response.status_code == 200:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


def pid(proc: ServiceProcess) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def drain_stderr(proc: ServiceProcess, path: str) -> None:
    """Copy a service's stderr to a file: an unread pipe would block its event loop."""
    import shutil
    import threading

    def copy() -> None:
        assert proc.proc is not None
        assert proc.proc.stderr is not None
        with open(path, "wb") as out:
            shutil.copyfileobj(proc.proc.stderr, out, 1024)

    threading.Thread(target=copy, daemon=True).start()


def start_reference() -> ServiceProcess:
    port = free_port()
    proc = ServiceProcess("market", port=port)
    import subprocess
    import sys

    proc.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "bench.feed:reference_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    drain_stderr(proc, os.path.join(tempfile.gettempdir(), "bench-feed-reference.log"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(proc.url + "/market/ticker", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc


async def main(seconds: float, sizes: list[int], gateway_sizes: list[int]) -> None:
    stores = await ScratchStores.open()
    database_url, redis_url = stores.database_url, stores.redis_url
    redis = create_redis(redis_url)
    await redis.flushdb()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "MARKET_EXCHANGES": "sim",
        "SIM_SPEED": "1",
        "SIM_TICK_INTERVAL": str(TICK_INTERVAL),
        "RATE_LIMIT_ENABLED": "false",
    }
    market = ServiceProcess("market", env=env)
    gateway: ServiceProcess | None = None
    reference = None
    try:
        print(
            f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, "
            f"{seconds:.0f} s per run, {CLIENT_PROCESSES} client processes"
        )
        reference = await asyncio.to_thread(start_reference)
        ref_url = reference.url.replace("http", "ws") + "/market/ws"
        await asyncio.to_thread(market.start, wait=False)
        drain_stderr(market, os.path.join(tempfile.gettempdir(), "bench-feed-market.log"))
        await asyncio.to_thread(market.wait_listening)
        ws_url = market.url.replace("http", "ws") + "/market/ws"
        for n in sizes:
            print(f"{n} subscribers, one symbol, {1 / TICK_INTERVAL:.0f} ticks/s:")
            print(
                line(
                    "reference (bare Starlette)",
                    await asyncio.to_thread(run_clients, ref_url, n, seconds, pid(reference)),
                )
            )
            print(
                line(
                    "market service (direct)",
                    await asyncio.to_thread(run_clients, ws_url, n, seconds, pid(market)),
                )
            )
        if gateway_sizes:
            gateway = ServiceProcess("gateway", env={**env, "MARKET_SERVICE_URLS": market.url})
            try:
                await asyncio.to_thread(gateway.start, wait=False)
                drain_stderr(gateway, os.path.join(tempfile.gettempdir(), "bench-feed-gateway.log"))
                await asyncio.to_thread(gateway.wait_listening)
            except RuntimeError as exc:
                print(f"gateway did not start: {exc}")
                gateway = None
        if gateway is not None:
            gw_url = gateway.url.replace("http", "ws") + "/market/ws"
            for n in gateway_sizes:
                print(f"{n} subscribers through the gateway:")
                print(
                    line(
                        "market via gateway",
                        await asyncio.to_thread(run_clients, gw_url, n, seconds, pid(gateway)),
                    )
                )
        print("cached GET /market/ticker (50 concurrent keep-alive clients, one process):")
        targets = [
            ("reference (bare Starlette route)", reference.url),
            ("market service", market.url),
        ]
        if gateway is not None:
            targets.append(("market via gateway", gateway.url))
        for label, base in targets:
            print(f"  {label:<34}{await ticker_rate(base, seconds):>8,.0f} req/s")
    finally:
        for proc in (gateway, market, reference):
            if proc is not None:
                await asyncio.to_thread(proc.stop)
        await redis.flushdb()
        await redis.aclose()
        await stores.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", default="100,1000,2000")
    parser.add_argument("--gateway-sizes", default="100,1000")
    args = parser.parse_args()
    asyncio.run(
        main(
            args.seconds,
            [int(s) for s in args.sizes.split(",") if s],
            [int(s) for s in args.gateway_sizes.split(",") if s],
        )
    )
