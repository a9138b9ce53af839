"""Live-feed benchmark: ticks delivered per second and tick-to-client latency over
``WS /market/ws`` for 100, 1 000 and 2 000 subscribers, straight to the market service and
through the gateway, plus cached ``GET /market/ticker`` requests per second.

Side by side with a reference measured the same way on the same machine: a bare Starlette
app that sends a 204-byte tick to every client at the same rate straight from one loop
(no Redis, no queues). Both servers run under uvicorn with per-message deflate off, as
``tradebot up`` runs them (the market service with its own WebSocket protocol class, the
reference with uvicorn's default); clients run in separate processes (websockets' sans-I/O
client on uvloop, no compression), the same client for every row.
Latency = client receive time - the tick's own timestamp (the sim runs at SIM_SPEED=1, so a
tick's timestamp is the moment it was generated). Server CPU is the server's process (for
the gateway rows: gateway + market); clients CPU is all client processes together.

    .venv/bin/python -m bench.feed [--seconds 5] [--sizes 100,1000,2000]
        [--gateway-sizes 100,1000] [--client-processes 4]
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

from bench.clients import http_client
from bench.stores import ScratchStores
from shared.redis import create_redis
from tests.servers import ServiceProcess, free_port
from tests.stores import (
    TEST_ENCRYPTION_KEY,
    TEST_JWT_SECRET,
)

SYMBOL = "BTC/USDT"
CLIENT_PROCESSES = 4  # more than the cores: a burst is parsed by all of them at once
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
#
# The load generator shares two cores with the servers and Redis, so every microsecond it
# spends per received frame is taken from the server under test and shows up as latency.
# websockets' asyncio client costs ~24 us per frame (a reader task woken per frame);
# websockets' sans-I/O protocol fed straight from an asyncio Protocol on uvloop costs ~11
# us: the same library's parser, no task per frame. Both servers get the same client.


def _client_process(
    url: str, n: int, ready: Any, start: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    import uvloop

    uvloop.run(_clients(url, n, ready, start, results))


class _Counted(asyncio.Protocol):
    """One subscriber: websockets' sans-I/O client protocol on a raw asyncio transport."""

    def __init__(self, uri: Any, on_text: Any) -> None:
        from websockets.client import ClientProtocol

        self.conn = ClientProtocol(uri)  # no extensions: no compression
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.send_request(self.conn.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Response

        now = time.time()
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.on_text(self, bytes(event.data), now)
            elif isinstance(event, Response):
                if conn.handshake_exc is not None:
                    self.subscribed.set_exception(conn.handshake_exc)
                else:
                    conn.send_text(SUBSCRIBE)
        self._flush()  # pongs, the subscribe frame, a close reply

    def _flush(self) -> None:
        pending = self.conn.data_to_send()
        if pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(pending))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("connection lost"))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.conn.send_close(1000)
            self._flush()
            self.transport.close()


SUBSCRIBE = orjson.dumps({"op": "subscribe", "symbols": [SYMBOL], "exchange": "sim"})


async def _clients(url: str, n: int, ready: Any, start: Any, results: Any) -> None:
    import resource

    from websockets.uri import parse_uri

    loop = asyncio.get_running_loop()
    uri = parse_uri(url)
    window = (0.0, 0.0)
    counts: dict[_Counted, int] = {}
    latencies: list[float] = []
    stamps: set[str] = set()
    first: list[_Counted] = []

    def on_text(sub: _Counted, raw: bytes, now: float) -> None:
        frame = orjson.loads(raw)
        kind = frame.get("type")
        if kind != "ticker":
            if kind == "subscribed" and not sub.subscribed.done():
                sub.subscribed.set_result(None)
            return
        at = datetime.fromisoformat(frame["timestamp"].replace("Z", "+00:00")).timestamp()
        if window[0] <= at < window[1]:
            counts[sub] += 1
            latencies.append(now * 1000 - at * 1000)
            if sub is first[0]:
                stamps.add(frame["timestamp"])

    gate = asyncio.Semaphore(50)

    async def one() -> _Counted:
        async with gate:
            _, sub = await asyncio.wait_for(
                loop.create_connection(lambda: _Counted(uri, on_text), uri.host, uri.port), 60
            )
            await asyncio.wait_for(sub.subscribed, 60)
            return sub

    subs = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    live = [s for s in subs if isinstance(s, _Counted)]
    counts.update((s, 0) for s in live)
    first.extend(live[:1])
    ready.put(len(live))
    begin, end = await asyncio.to_thread(start.get)
    window = (begin, end)
    await asyncio.sleep(max(0.0, begin - time.time()))
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(max(0.0, end - time.time()))
    after = resource.getrusage(resource.RUSAGE_SELF)
    # Late ticks of the window still count: wait at least 1 s, then until every client has
    # as many as the best one (or GRACE runs out).
    await asyncio.sleep(1.0)
    deadline = end + GRACE
    while time.time() < deadline and len(set(counts.values())) > 1:
        await asyncio.sleep(0.1)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    results.put(
        {
            "counts": list(counts.values()),
            "latencies": latencies,
            "stamps": sorted(stamps),
            "cpu": cpu,
        }
    )
    for sub in live:
        sub.close()
    await asyncio.sleep(0.2)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_clients(
    url: str, n: int, seconds: float, server_pids: list[int], processes: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, start, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    per = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
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
    cpu_before = sum(_cpu(p) for p in server_pids)
    time.sleep(seconds)
    cpu_used = sum(_cpu(p) for p in server_pids) - cpu_before
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
        "client_cpu": sum(part["cpu"] for part in parts) / seconds,
    }


def line(label: str, r: dict[str, Any]) -> str:
    return (
        f"  {label:<28} clients {r['connected']:>5}"
        f"  ticks/s delivered {r['delivered_per_s']:>8,.0f}"
        f"  (published {r['published_per_s']:.1f}/s, {100 * r['delivered_ratio']:.1f}% delivered)"
        f"  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms"
        f"  server CPU {100 * r['server_cpu']:.0f}%  clients CPU {100 * r['client_cpu']:.0f}%"
    )


async def ticker_rate(base: str, seconds: float, concurrency: int = 50) -> tuple[float, int]:
    """Cached tickers per second over ``concurrency`` keep-alive clients, and how many
    requests failed (counted, and printed: the run goes on to its end). The client lets
    go of idle connections long before the server would close them (bench/clients.py):
    reusing one the server was closing was what ended this benchmark with "Server
    disconnected without sending a response"."""
    done = 0
    failed = 0
    end = time.monotonic() + seconds
    async with http_client(connections=concurrency, base_url=base, timeout=10) as client:

        async def worker() -> None:
            nonlocal done, failed
            while time.monotonic() < end:
                try:
                    response = await client.get("/market/ticker", params={"symbol": SYMBOL})
                except httpx.TransportError:
                    failed += 1
                    continue
                if response.status_code == 200:
                    done += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds, failed


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


async def main(seconds: float, sizes: list[int], gateway_sizes: list[int], processes: int) -> None:
    stores = await ScratchStores.open()
    database_url, redis_url = stores.database_url, stores.redis_url
    redis = create_redis(redis_url)
    await redis.flushdb()
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        # As `tradebot up` runs them ("test" also turns off the services' GC tuning).
        "ENVIRONMENT": "development",
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
            f"{seconds:.0f} s per run, {processes} client processes"
        )
        reference = await asyncio.to_thread(start_reference)
        ref_url = reference.url.replace("http", "ws") + "/market/ws"
        await asyncio.to_thread(market.start, wait=False)
        await asyncio.to_thread(market.wait_listening)
        ws_url = market.url.replace("http", "ws") + "/market/ws"
        for n in sizes:
            print(f"{n} subscribers, one symbol, {1 / TICK_INTERVAL:.0f} ticks/s:")
            print(
                line(
                    "reference (bare Starlette)",
                    await asyncio.to_thread(
                        run_clients, ref_url, n, seconds, [pid(reference)], processes
                    ),
                )
            )
            print(
                line(
                    "market service (direct)",
                    await asyncio.to_thread(
                        run_clients, ws_url, n, seconds, [pid(market)], processes
                    ),
                )
            )
        if gateway_sizes:
            gateway = ServiceProcess("gateway", env={**env, "MARKET_SERVICE_URLS": market.url})
            try:
                await asyncio.to_thread(gateway.start, wait=False)
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
                        await asyncio.to_thread(
                            run_clients, gw_url, n, seconds, [pid(gateway), pid(market)], processes
                        ),
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
            rate, failed = await ticker_rate(base, seconds)
            note = f"  ({failed} failed)" if failed else ""
            print(f"  {label:<34}{rate:>8,.0f} req/s{note}")
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
    parser.add_argument("--client-processes", type=int, default=CLIENT_PROCESSES)
    args = parser.parse_args()
    asyncio.run(
        main(
            args.seconds,
            [int(s) for s in args.sizes.split(",") if s],
            [int(s) for s in args.gateway_sizes.split(",") if s],
            args.client_processes,
        )
    )
