"""Event-path benchmark: trade fill -> WS push latency and events/s through the consumer group.

Prints our figures beside the raw Redis Streams reference measured the same way on the same
machine, so the difference is the services' own work:

* reference: un-pipelined XADDs/s from one producer, and XADD -> XREADGROUP latency at the
  target rate;
* ours: a ``trade.executed`` event XADDed at the target rate (what the trading engine does
  for each fill) -> the notification service consumes it, stores it, and pushes it over
  ``WS /notifications/ws`` to the owner's socket: latency p50/p99 of that whole path; then a
  burst of events and the sustained rate at which the consumer group stores them.

The notification service runs as its own process (``uvicorn --factory``) on a throw-away
database and Redis index. The user service is not started: preferences fall back to "every
channel" (the documented behaviour), with the circuit breaker open.

    .venv/bin/python -m bench.events [--rate 1000] [--seconds 5] [--burst 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import psutil
from redis.asyncio import Redis
from sqlalchemy import text

from bench.stores import ScratchStores
from shared.db import create_engine, create_sessionmaker
from shared.events import Event
from shared.redis import create_redis
from tests.factories import create_user
from tests.notification_service.events import trade_event
from tests.servers import ServiceProcess, free_port
from tests.stores import (
    TEST_ENCRYPTION_KEY,
    TEST_INTERNAL_TOKEN,
    TEST_JWT_SECRET,
)

STREAM = "events:trade.executed"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def trade(user_id: uuid.UUID, sent_at: float) -> Event:
    """The tests' paper fill, stamped with when the bench sent it."""
    event = trade_event(user_id, bench_sent_at=sent_at, bench_sent_wall=time.time())
    return dataclasses.replace(event, source="bench")


async def paced(rate: int, seconds: float, send: Any) -> int:
    """Call ``send(i)`` ``rate`` times a second for ``seconds``; returns how many were sent."""
    total = int(rate * seconds)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        while sent < due:
            await send(sent)
            sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    return sent


# --- the reference: raw Redis Streams ---------------------------------------------------------


async def raw_xadd_rate(redis: Redis, seconds: float = 2.0) -> float:
    stream = "bench:raw:xadd"
    fields = trade(uuid.uuid4(), 0.0).to_fields()
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await redis.xadd(stream, fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
        n += 1
    elapsed = time.perf_counter() - started
    await redis.delete(stream)
    return n / elapsed


async def raw_latency(redis: Redis, redis_url: str, rate: int, seconds: float) -> list[float]:
    stream = "bench:raw:latency"
    await redis.xgroup_create(stream, "bench", id="$", mkstream=True)
    reader = create_redis(redis_url)
    latencies: list[float] = []
    total = int(rate * seconds)

    async def consume() -> None:
        while len(latencies) < total:
            response: Any = await reader.xreadgroup(
                "bench", "c1", {stream: ">"}, count=100, block=1000
            )
            now = time.perf_counter()
            for _name, entries in response or []:
                for entry_id, fields in entries:
                    latencies.append((now - float(fields["t"])) * 1000)
                    await reader.xack(stream, "bench", entry_id)

    async def send(_i: int) -> None:
        await redis.xadd(stream, {"t": repr(time.perf_counter()), "data": "x" * 300})

    consumer = asyncio.create_task(consume())
    await paced(rate, seconds, send)
    await asyncio.wait_for(consumer, 30)
    await reader.aclose()
    await redis.delete(stream)
    return latencies


# --- ours: the notification service -----------------------------------------------------------


async def ws_latency(
    service_url: str, redis: Redis, user: Any, rate: int, seconds: float
) -> tuple[list[float], list[float], int]:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    picked: list[float] = []  # XADD -> the consumer's transaction began (created_at)
    total = int(rate * seconds)
    url = service_url.replace("http://", "ws://") + "/notifications/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {user.token}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"

        async def receive() -> None:
            while len(latencies) < total:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "notification":
                    sent_at = float(frame["data"]["bench_sent_at"])
                    latencies.append((time.perf_counter() - sent_at) * 1000)
                    created = datetime.fromisoformat(frame["created_at"]).timestamp()
                    picked.append((created - float(frame["data"]["bench_sent_wall"])) * 1000)

        async def send(_i: int) -> None:
            await redis.xadd(STREAM, trade(user.id, time.perf_counter()).to_fields())  # type: ignore[arg-type]

        receiver = asyncio.create_task(receive())
        sent = await paced(rate, seconds, send)
        try:
            await asyncio.wait_for(receiver, 60)
        except TimeoutError:
            pass
    return latencies, picked, sent


async def burst_rate(engine: Any, redis: Redis, users: list[Any], n: int) -> float:
    async with engine.connect() as conn:
        before = int((await conn.execute(text("SELECT count(*) FROM notifications"))).scalar_one())
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.xadd(STREAM, trade(users[i % len(users)].id, 0.0).to_fields())  # type: ignore[arg-type]
        started = time.perf_counter()
        await pipe.execute()
    while True:
        async with engine.connect() as conn:
            stored = int(
                (await conn.execute(text("SELECT count(*) FROM notifications"))).scalar_one()
            )
        if stored - before >= n:
            return n / (time.perf_counter() - started)
        if time.perf_counter() - started > 300:
            raise RuntimeError(f"only {stored - before} of {n} stored after 300 s")
        await asyncio.sleep(0.05)


async def fill_to_push(
    service_url: str, trading_url: str, market_url: str, user: Any, orders: int, parallel: int
) -> tuple[list[float], float]:
    """Paper orders through the real trading engine (sim exchange); latency from each fill's
    ``executed_at`` to the owner's socket receiving its notification."""
    from decimal import ROUND_UP, Decimal

    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=market_url) as market:
        book = (await market.get("/market/orderbook", params={"symbol": "BTC/USDT"})).json()
    best_ask = Decimal(str(book["asks"][0][0]))
    quantity = str((Decimal(10) / best_ask).quantize(Decimal("0.0001"), rounding=ROUND_UP))
    latencies: list[float] = []
    url = service_url.replace("http://", "ws://") + "/notifications/ws"
    async with (
        connect(url, additional_headers={"Authorization": f"Bearer {user.token}"}) as ws,
        httpx.AsyncClient(base_url=trading_url, timeout=30, headers=user.headers) as trading,
    ):
        assert json.loads(await ws.recv())["type"] == "connected"
        placed = 0

        async def receive() -> None:
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "notification" and "executed_at" in frame["data"]:
                    filled = datetime.fromisoformat(frame["data"]["executed_at"]).timestamp()
                    latencies.append((time.time() - filled) * 1000)

        async def place(worker: int) -> None:
            nonlocal placed
            for i in range(worker, orders, parallel):
                response = await trading.post(
                    "/trading/orders",
                    json={
                        "exchange": "sim",
                        "symbol": "BTC/USDT",
                        "side": "buy" if i % 2 == 0 else "sell",
                        "type": "market",
                        "quantity": quantity,
                        "mode": "paper",
                        "client_order_id": f"bench-{i}-{uuid.uuid4().hex[:6]}",
                    },
                )
                if response.status_code == 201:
                    placed += 1

        receiver = asyncio.create_task(receive())
        started = time.perf_counter()
        await asyncio.gather(*(place(w) for w in range(parallel)))
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 10
        while len(latencies) < placed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        receiver.cancel()
    return latencies, placed / elapsed


async def main(rate: int, seconds: float, burst: int, concurrency: int, orders: int) -> None:
    stores = await ScratchStores.open()
    database_url, redis_url = stores.database_url, stores.redis_url
    redis = create_redis(redis_url)
    await redis.flushdb()
    engine = create_engine(database_url, pool_size=2)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "INTERNAL_API_TOKEN": TEST_INTERNAL_TOKEN,  # the engine calls /user/internal
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "USER_SERVICE_URLS": f"http://127.0.0.1:{free_port()}",  # down: every channel
        "CONSUMER_CONCURRENCY": str(concurrency),
    }
    os.environ.update({"JWT_SECRET": TEST_JWT_SECRET})
    service = ServiceProcess("notification", env=env)
    market = ServiceProcess("market", env={**env, "MARKET_EXCHANGES": "sim"})
    users = ServiceProcess("user", env=env)
    try:
        print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
        print("reference: raw Redis Streams on this machine")
        xadds = await raw_xadd_rate(redis)
        raw = await raw_latency(redis, redis_url, rate, seconds)
        print(f"  un-pipelined XADD from one producer: {xadds:,.0f}/s")
        print(
            f"  XADD -> XREADGROUP at {rate}/s: p50 {pct(raw, 50):.2f} ms, "
            f"p99 {pct(raw, 99):.2f} ms (n={len(raw)})"
        )

        await asyncio.to_thread(service.start)
        async with create_sessionmaker(engine, redis)() as session:
            people = [await create_user(session, redis) for _ in range(20)]
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/health")).status_code == 200

        # warm-up: connections, caches, breaker opened on the absent user service
        await ws_latency(service.url, redis, people[0], 200, 1.0)
        proc = psutil.Process(service.proc.pid)  # type: ignore[union-attr]
        cpu_before, wall_before = sum(proc.cpu_times()[:2]), time.perf_counter()
        ours, picked, sent = await ws_latency(service.url, redis, people[0], rate, seconds)
        cpu_share = (sum(proc.cpu_times()[:2]) - cpu_before) / (time.perf_counter() - wall_before)
        print(f"ours: notification service ({concurrency} consumers in the group, 1 process)")
        if ours:
            print(
                f"  trade.executed XADD -> stored -> WS push at {rate}/s: "
                f"p50 {pct(ours, 50):.2f} ms, p99 {pct(ours, 99):.2f} ms, "
                f"max {max(ours):.1f} ms (received {len(ours)}/{sent}, "
                f"mean {statistics.fmean(ours):.2f} ms; service CPU {cpu_share:.0%} of one core)"
            )
            print(
                f"    of which XADD -> consumer transaction begun: p50 {pct(picked, 50):.2f} ms, "
                f"p99 {pct(picked, 99):.2f} ms"
            )
        per_s = await burst_rate(engine, redis, people, burst)
        print(f"  sustained: burst of {burst} events stored at {per_s:,.0f} events/s")

        if orders:
            await asyncio.gather(asyncio.to_thread(market.start), asyncio.to_thread(users.start))
            trading = ServiceProcess(
                "trading",
                env={**env, "MARKET_SERVICE_URLS": market.url, "USER_SERVICE_URLS": users.url},
            )
            await asyncio.to_thread(trading.start)
            try:
                fills, order_rate = await fill_to_push(
                    service.url, trading.url, market.url, people[1], orders, parallel=1
                )
            finally:
                await asyncio.to_thread(trading.stop)
            if fills:
                print(
                    f"  paper order via the trading engine (sim), fill -> WS push: "
                    f"p50 {pct(fills, 50):.2f} ms, p99 {pct(fills, 99):.2f} ms "
                    f"(n={len(fills)}, one client, orders at {order_rate:,.0f}/s)"
                )
                # The trading engine's share: the fill's executed_at -> its XADD (entry id ms).
                shares = []
                entries: Any = await redis.xrange(STREAM, count=1_000_000)
                for entry_id, fields in entries:
                    data = json.loads(fields["data"])
                    if fields.get("source") != "bench" and data.get("executed_at"):
                        filled = datetime.fromisoformat(data["executed_at"]).timestamp() * 1000
                        shares.append(int(entry_id.split("-")[0]) - filled)
                if shares:
                    print(
                        f"    of which fill -> trade.executed XADD (the trading engine's commit "
                        f"and outbox): p50 {pct(shares, 50):.2f} ms, p99 {pct(shares, 99):.2f} ms"
                    )
    finally:
        for process in (service, market, users):
            await asyncio.to_thread(process.stop)
        await engine.dispose()
        await redis.flushdb()
        await redis.aclose()
        await stores.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--orders", type=int, default=300, help="paper orders (0: skip)")
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.burst, args.concurrency, args.orders))
