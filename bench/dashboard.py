"""Web dashboard benchmark in headless Chromium (Debian's, through Playwright).

1. **Paint.** Each main page loaded cold (a new browser context: no cache) and warm (the
   same page again) from the local stack (all six services as processes, the sim exchange):
   first paint, first contentful paint, largest contentful paint, and "data shown" (the
   moment the page's own data is in the DOM, seen by a MutationObserver: the first price
   in the ticker table, the bots table, ...; our first meaningful paint). Reference in the
   same run: a bare HTML page with one line of text served from this process.
2. **Ticks.** The markets page while 20 symbols tick 10 times a second each (200 frames/s
   through the gateway's WebSocket proxy), from a stub market upstream (the sim has 6
   pairs): the longest main-thread task (Long Tasks API, tasks over 50 ms), the longest
   and p99 gap between animation frames, frames per second, and price repaints per second
   in the page. Reference in the same run: the same page with the symbols ticking once
   every 10 s.

    .venv/bin/python -m bench.dashboard [--runs 3] [--seconds 10]

The dashboard must be built (./scripts/build-web) and /usr/bin/chromium installed
(./scripts/install-chromium). Figures print with the load average: compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

from bench.stores import ScratchStores
from tests.gateway.web.browser import launch, open_logged_in, seed_account, sign_up
from tests.servers import free_port, running_services
from tests.stores import TEST_ENCRYPTION_KEY, TEST_INTERNAL_TOKEN, TEST_JWT_SECRET

SERVICES = ["user", "market", "analysis", "trading", "notification", "gateway"]
# Route, and the element whose arrival means the page shows its data.
PAGES = [
    ("login", "form.login-card"),
    ("markets", 'tr[data-symbol="BTC/USDT"] td.price'),
    ("backtests", "form.backtest-form"),
    ("bots", "table.bots tbody tr"),
    ("trading", "table.trades tbody tr"),
    ("notifications", "ul.notes li"),
    ("settings", "table.channels"),
]
TICK_SYMBOLS = [f"C{i:02d}/USDT" for i in range(20)]

# Records paint entries, LCP, long tasks and when the ready selector first matched.
PROBE = r"""
(() => {
  const probe = window.__probe = {lcp: 0, ready: 0, longTasks: [], frames: [], repaints: 0};
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.lcp = Math.max(probe.lcp, e.startTime);
  }).observe({type: 'largest-contentful-paint', buffered: true});
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.longTasks.push(e.duration);
  }).observe({type: 'longtask', buffered: true});
  const selector = window.__readySelector;
  // Ready: the element is there with a digit in it (a price, not the "—" placeholder).
  const check = () => {
    if (probe.ready || !selector) return;
    const el = document.querySelector(selector);
    const shown = el && (el.tagName === 'FORM' || /[0-9A-Za-z]/.test(el.textContent));
    if (shown)
      probe.ready = performance.now();
  };
  new MutationObserver((records) => {
    check();
    for (const r of records) if (r.type === 'characterData') probe.repaints++;
  }).observe(document, {subtree: true, childList: true, characterData: true});
})();
"""
PAINTS = """
() => {
  const paint = Object.fromEntries(
    performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
  return {fp: paint['first-paint'] ?? null, fcp: paint['first-contentful-paint'] ?? null,
          lcp: window.__probe.lcp || null, ready: window.__probe.ready || null};
}
"""
FRAMES = """
(ms) => new Promise((done) => {
  const probe = window.__probe;
  probe.longTasks = [];
  const repaints0 = probe.repaints;
  const gaps = [];
  let last = performance.now();
  const end = last + ms;
  const step = (now) => {
    gaps.push(now - last);
    last = now;
    if (now < end) requestAnimationFrame(step);
    else done({gaps, longTasks: probe.longTasks.slice(), repaints: probe.repaints - repaints0});
  };
  requestAnimationFrame(step);
})
"""


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@contextlib.contextmanager
def reference_page() -> Iterator[str]:
    """A bare HTML page (one line of text) from a thread of this process."""
    body = b"<!doctype html><title>ref</title><main><p id=ready>Reference page</p></main>"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def measure_paint(browser: Browser, url: str, ready: str, session: str | None) -> dict[str, Any]:
    """One cold load and one warm reload of ``url``; paint figures of each (ms)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    context.add_init_script(f"window.__readySelector = {json.dumps(ready)};" + PROBE)
    if session:
        context.add_init_script(
            f"if (!localStorage.getItem('tradebot.session'))"
            f" localStorage.setItem('tradebot.session', {json.dumps(session)});"
        )
    page = context.new_page()
    figures: dict[str, Any] = {}
    for kind in ("cold", "warm"):
        if kind == "cold":
            page.goto(url)
        else:
            page.reload()
        page.wait_for_selector(ready, timeout=30_000)
        page.wait_for_timeout(300)  # let LCP settle
        figures[kind] = page.evaluate(PAINTS)
    context.close()
    return figures


def paint_phase(browser: Browser, gateway: str, runs: int) -> None:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    tokens = sign_up(gateway, email)
    seed_account(gateway, tokens["access_token"])
    wait_for_a_fill(gateway, tokens["access_token"])
    session = json.dumps(
        {
            "accessToken": tokens["access_token"],
            "refreshToken": tokens["refresh_token"],
            "expiresAt": int(time.time() * 1000) + int(tokens["expires_in"]) * 1000,
            "email": email,
        }
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    with reference_page() as reference:
        for _ in range(runs):
            rows.setdefault("reference", []).append(
                measure_paint(browser, reference, "#ready", None)
            )
            for route, ready in PAGES:
                url = f"{gateway}/#/{route}"
                rows.setdefault(route, []).append(
                    measure_paint(browser, url, ready, None if route == "login" else session)
                )
    print(f"\npaint (ms, median of {runs}; range) — load average {load()}")
    print(
        f"{'page':<14} {'':>5} {'first paint':>16} {'first content':>16} {'LCP':>16} "
        f"{'data shown':>16}"
    )
    for route, samples in rows.items():
        for kind in ("cold", "warm"):
            cells = []
            for key in ("fp", "fcp", "lcp", "ready"):
                values = [s[kind][key] for s in samples if s[kind][key] is not None]
                cells.append(
                    f"{statistics.median(values):6.0f} ({min(values):4.0f}-{max(values):4.0f})"
                    if values
                    else f"{'—':>16}"
                )
            print(f"{route:<14} {kind:>5} " + " ".join(f"{c:>16}" for c in cells))


def wait_for_a_fill(gateway: str, token: str) -> None:
    """Until the seeded bot's first fill (and its notification) are there to show."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        trades = httpx.get(f"{gateway}/trading/trades", headers=headers).json()["total"]
        notes = httpx.get(f"{gateway}/notifications", headers=headers).json()["total"]
        if trades and notes:
            return
        time.sleep(0.5)
    raise RuntimeError("the bench bot did not trade within 60 s")


# -- the ticking phase ---------------------------------------------------------------------


def stub_market_app(rate: float) -> Any:
    """A market upstream with 20 symbols, each ticking ``rate`` times a second on the feed."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    prices = {s: 100.0 + 10 * i for i, s in enumerate(TICK_SYMBOLS)}

    def ticker(symbol: str) -> dict[str, Any]:
        prices[symbol] *= 1 + random.uniform(-0.0005, 0.0005)
        p = prices[symbol]
        return {
            "exchange": "sim",
            "symbol": symbol,
            "price": round(p, 4),
            "bid": round(p * 0.9999, 4),
            "ask": round(p * 1.0001, 4),
            "volume": 1234.5,
            "change": 0.42,
            "timestamp": int(time.time() * 1000),
        }

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "healthy", "services": {}})

    async def exchanges(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                "exchanges": [
                    {"id": "sim", "default": True, "status": "up", "timeframes": ["1m", "1h"]}
                ]
            }
        )

    async def pairs(_: Request) -> JSONResponse:
        return JSONResponse(
            {
                "pairs": [
                    {
                        "symbol": s,
                        "base": s.split("/")[0],
                        "quote": "USDT",
                        "exchange": "sim",
                        "active": True,
                        "updated_at": "2026-01-01T00:00:00Z",
                    }
                    for s in TICK_SYMBOLS
                ]
            }
        )

    async def tickers(request: Request) -> JSONResponse:
        symbols = request.query_params.get("symbols", "").split(",")
        return JSONResponse(
            {"exchange": "sim", "tickers": [ticker(s) for s in symbols if s in prices]}
        )

    async def ohlcv(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "100"))
        step = 3_600_000 if request.query_params.get("timeframe", "1h") == "1h" else 60_000
        now = int(time.time() * 1000) // step * step
        price, rows = 100.0, []
        for i in range(limit):
            o = price
            price *= 1 + random.uniform(-0.01, 0.01)
            rows.append(
                [
                    now - (limit - 1 - i) * step,
                    o,
                    max(o, price) * 1.002,
                    min(o, price) * 0.998,
                    price,
                    random.uniform(10, 100),
                ]
            )
        return JSONResponse(
            {
                "exchange": "sim",
                "symbol": request.query_params.get("symbol"),
                "timeframe": "1h",
                "candles": rows,
            }
        )

    async def orderbook(request: Request) -> JSONResponse:
        p = prices.get(request.query_params.get("symbol", ""), 100.0)
        return JSONResponse(
            {
                "exchange": "sim",
                "symbol": request.query_params.get("symbol"),
                "bids": [[p - i * 0.01, 1.0] for i in range(1, 13)],
                "asks": [[p + i * 0.01, 1.0] for i in range(1, 13)],
                "timestamp": "2026-01-01T00:00:00Z",
            }
        )

    async def feed(socket: WebSocket) -> None:
        await socket.accept()
        subscribed: set[str] = set()

        async def pump() -> None:
            while True:
                started = time.monotonic()
                for symbol in list(subscribed):
                    await socket.send_text(json.dumps({"type": "ticker", **ticker(symbol)}))
                await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

        task = asyncio.create_task(pump())
        try:
            while True:
                frame = json.loads(await socket.receive_text())
                if frame.get("op") == "subscribe":
                    subscribed.update(s for s in frame["symbols"] if s in prices)
                    await socket.send_text(
                        json.dumps(
                            {"type": "subscribed", "exchange": "sim", "symbols": frame["symbols"]}
                        )
                    )
        except WebSocketDisconnect:
            pass
        finally:
            task.cancel()

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/market/exchanges", exchanges),
            Route("/market/pairs", pairs),
            Route("/market/tickers", tickers),
            Route("/market/ohlcv", ohlcv),
            Route("/market/orderbook", orderbook),
            WebSocketRoute("/market/ws", feed),
        ]
    )


def serve_stub(port: int, rate: float) -> None:
    import uvicorn

    uvicorn.run(
        stub_market_app(rate),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_per_message_deflate=False,
    )


@contextlib.contextmanager
def stub_market(rate: float) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.dashboard", "--stub-market", str(port), "--rate", str(rate)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url + "/health", timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def tick_phase(browser: Browser, env: dict[str, str], runs: int, seconds: float) -> None:
    print(f"\nmarkets page, 20 symbols ticking (median of {runs}; range) — load average {load()}")
    print(
        f"{'feed':<22} {'longest task':>14} {'tasks>50ms':>11} {'max frame gap':>14} "
        f"{'p99 gap':>9} {'fps':>6} {'repaints/s':>11}"
    )
    for label, rate in (("reference 0.1/s each", 0.1), ("10/s each (200/s)", 10.0)):
        samples = []
        with stub_market(rate) as market:
            names = ["user", "notification", "analysis", "gateway"]
            with running_services(names, {**env, "MARKET_SERVICE_URLS": market}) as urls:
                for _ in range(runs):
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 900}, color_scheme="dark"
                    )
                    context.add_init_script("window.__readySelector = null;" + PROBE)
                    page = context.new_page()
                    page.add_init_script("localStorage.setItem('tradebot.indicators', '[]')")
                    open_logged_in(
                        page, urls["gateway"], f"tick-{uuid.uuid4().hex[:8]}@example.com"
                    )
                    page.wait_for_selector('tr[data-symbol="C19/USDT"]')
                    page.wait_for_selector(".chart canvas")
                    page.wait_for_timeout(1000)
                    samples.append(page.evaluate(FRAMES, seconds * 1000))
                    context.close()
        longest = [max(s["longTasks"], default=0.0) for s in samples]
        counts = [len(s["longTasks"]) for s in samples]
        gaps = [max(s["gaps"]) for s in samples]
        p99 = [pct(s["gaps"], 0.99) for s in samples]
        fps = [len(s["gaps"]) / seconds for s in samples]
        repaints = [s["repaints"] / seconds for s in samples]

        def cell(values: list[float]) -> str:
            return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"

        print(
            f"{label:<22} {cell(longest):>14} {cell(counts):>11} {cell(gaps):>14} "
            f"{cell(p99):>9} {cell(fps):>6} {cell(repaints):>11}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stub-market", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_market:
        serve_stub(args.stub_market, args.rate)
        return
    print(f"cpus: {os.cpu_count()}, load average: {load()}")
    stores = asyncio.run(ScratchStores.open())
    env = {
        **os.environ,
        "DATABASE_URL": stores.database_url,
        "REDIS_URL": stores.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "INTERNAL_API_TOKEN": TEST_INTERNAL_TOKEN,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "MARKET_EXCHANGES": "sim",
        "SIM_SPEED": "60",
        "RATE_LIMIT_PER_MINUTE": "100000",
    }
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            with running_services(SERVICES, env) as urls:
                paint_phase(browser, urls["gateway"], args.runs)
            tick_phase(browser, env, args.runs, args.seconds)
            browser.close()
    finally:
        asyncio.run(stores.close())


if __name__ == "__main__":
    main()
