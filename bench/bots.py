"""Bot-runner benchmark: how many paper bots one trading-engine process runs on 1-minute
candles with the signal-to-order latency p99 under 100 ms (target: 1,000 bots).

For each bot count N the engine runs as its own process (``uvicorn --factory``) on a
throw-away database and Redis index, with stubs of the market service
(order books, candle history, market rules) and of the user service in this process.
N running paper bots (moving-average crossovers, spread over a few symbols and users;
bot i trades symbol i % 10 with periods i % 5, so all the bots of a symbol share one
setting and a crossover moves every one of them at once: bursts of N/10 orders on one
candle, the column ``burst``) are inserted, the engine adopts them through its leases, then closed
candles of every symbol are published together on ``events:market.data.updated``, as the
market service does at each minute's close, at ``--interval`` seconds apart (much faster
than one a minute, so the figures are a harsher load than the real cadence).

Measured: the engine's own histogram ``trading_signal_to_order_seconds`` (from the candle
reaching the engine to the order committed, queueing behind the other bots included), and
the time until every bot had processed each candle. The reference printed beside it is
the target: 1,000 bots at p99 < 100 ms.

    .venv/bin/python -m bench.bots [--bots 100,250,500,1000] [--candles 15] [--interval 2]
        [--periods typical|fast]

Knobs (environment): BENCH_BOT_CONCURRENCY, BENCH_DATABASE_POOL_SIZE, BENCH_BOOK_TTL,
BENCH_ACCOUNT_TTL; BENCH_SHOW_ENGINE_LOG=1 prints the engine's stderr, bot errors and
order counts after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.stores import ScratchStores
from shared.db import create_engine, create_sessionmaker
from shared.events import MARKET_DATA_UPDATED, Event, publish
from shared.redis import create_redis
from shared.service_client import ServiceClient
from shared.strategies import SignalAction, TradingSignal, create_strategy
from tests.factories import create_user
from tests.servers import ServiceProcess, UvicornThread
from tests.stores import (
    TEST_ENCRYPTION_KEY,
    TEST_JWT_SECRET,
)
from tests.trading_engine.stubs import MarketStub, UserStub
from trading_engine.bots.adapter import Adapter
from trading_engine.bots.batch import CandleWork, apply_candles
from trading_engine.brokers.live import LiveBroker
from trading_engine.market_client import MarketClient
from trading_engine.models import Balance, Bot, Order, Strategy
from trading_engine.orders.service import OrderService
from trading_engine.settings import TradingSettings
from trading_engine.user_client import UserClient

MINUTE = 60_000
START_MS = 1_767_225_600_000
TARGET_BOTS, TARGET_P99_MS = 1000, 100.0
HISTOGRAM = "trading_signal_to_order_seconds"
CANDLE_HISTOGRAM = "trading_candle_to_order_seconds"
# Moving-average periods of the bots: "typical" settings trade every few dozen candles;
# "fast" ones (2-10 candles on a noisy walk) make ~15% of the bots trade on every candle.
PERIODS = {
    "typical": [(10, 30), (12, 26), (20, 50), (9, 21), (15, 40)],
    "fast": [(2, 5), (3, 6), (2, 8), (4, 9), (3, 10)],
}


def process_cpu_s(service: ServiceProcess) -> float:
    """User + system CPU seconds the service process has used (Linux /proc)."""
    assert service.proc is not None
    with open(f"/proc/{service.proc.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def make_symbols(count: int) -> list[str]:
    return [f"S{i}/USDT" for i in range(count)]


def walk(rng: random.Random, n: int, start: float = 100.0) -> list[list[float]]:
    rows, price = [], start
    for i in range(n):
        close = max(1.0, price * (1 + rng.gauss(0, 0.01)))
        rows.append(
            [
                START_MS + i * MINUTE,
                price,
                max(price, close) * 1.002,
                min(price, close) * 0.998,
                close,
                10.0,
            ]
        )
        price = close
    return rows


async def seed_bots(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    users: UserStub,
    symbols: list[str],
    n: int,
    profile: str,
) -> None:
    per_user = 10
    async with sessionmaker() as session:
        owners = [await create_user(session, redis) for _ in range((n + per_user - 1) // per_user)]
        for owner in owners:
            users.add(owner.id)
        periods = PERIODS[profile]
        strategies, bots, balances = [], [], []
        for i in range(n):
            owner = owners[i // per_user]
            fast, slow = periods[i % len(periods)]
            strategy = Strategy(
                id=uuid.uuid4(),
                user_id=owner.id,
                name=f"s{i}",
                strategy="ma_crossover",
                parameters={"fast": fast, "slow": slow, "ma": "sma"},
                active=True,
            )
            bot = Bot(
                id=uuid.uuid4(),
                user_id=owner.id,
                strategy_id=strategy.id,
                name=f"bot{i}",
                exchange="sim",
                symbol=symbols[i % len(symbols)],
                timeframe="1m",
                mode="paper",
                status="running",
                capital=Decimal(1000),
                position_size=Decimal(1),
                risk={},
            )
            strategies.append(strategy)
            bots.append(bot)
            balances.append(
                Balance(
                    user_id=owner.id,
                    bot_id=bot.id,
                    asset="USDT",
                    free=Decimal(1000),
                    locked=Decimal(0),
                )
            )
        for rows in (strategies, bots, balances):  # parents first: no ORM relationships
            session.add_all(rows)
            await session.flush()
        await session.commit()


def histogram(metrics: str, name: str) -> tuple[list[tuple[float, float]], float]:
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith(f"{name}_count"):
            count = float(line.split()[-1])
    return sorted(buckets), count


def quantile(buckets: list[tuple[float, float]], count: float, q: float) -> float | None:
    """Linear interpolation inside the histogram bucket that holds the quantile (ms)."""
    if count <= 0:
        return None
    target, previous_le, previous_n = q * count, 0.0, 0.0
    for le, n in buckets:
        if n >= target:
            if le == float("inf"):
                return previous_le * 1000
            share = (target - previous_n) / max(n - previous_n, 1e-9)
            return (previous_le + (le - previous_le) * share) * 1000
        previous_le, previous_n = le, n
    return None


async def run_one(
    n: int,
    *,
    database_url: str,
    redis_url: str,
    market: MarketStub,
    market_url: str,
    users: UserStub,
    user_url: str,
    candles: int,
    interval: float,
    symbol_count: int,
    profile: str,
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    redis = create_redis(redis_url)
    await redis.flushdb()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE trades, positions, orders, balances, bots, strategies, "
                "event_outbox, processed_events, users CASCADE"
            )
        )
    sessionmaker = create_sessionmaker(engine, redis)
    market.reset()
    users.reset()
    rng = random.Random(7)
    symbols = make_symbols(symbol_count)
    history = 300
    series = {s: walk(rng, history + candles + 1) for s in symbols}
    for symbol in symbols:
        market.markets["sim"][symbol] = {
            "symbol": symbol,
            "base": symbol.split("/")[0],
            "quote": "USDT",
            "precision": {"amount": 1e-6, "price": 1e-4},
            "limits": {"amount": {"min": 1e-6}, "cost": {"min": 1.0}},
            "maker": 0.001,
            "taker": 0.001,
        }
        market.candles[("sim", symbol, "1m")] = series[symbol][:history]
        market.set_price(symbol, series[symbol][history][1])
    await seed_bots(sessionmaker, redis, users, symbols, n, profile)

    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "ENVIRONMENT": "development",  # as deployed (test would turn GC tuning off)
        "LOG_LEVEL": "WARNING",
        "MARKET_SERVICE_URLS": market_url,
        "USER_SERVICE_URLS": user_url,
        "INTERNAL_API_TOKEN": UserStub.TOKEN,
        "BOT_SYNC_INTERVAL_S": "1.0",
        "ACCOUNT_CACHE_TTL_S": os.environ.get("BENCH_ACCOUNT_TTL", "5"),
        "BOT_CONCURRENCY": os.environ.get("BENCH_BOT_CONCURRENCY", "4"),
        "ORDER_BOOK_TTL_S": os.environ.get("BENCH_BOOK_TTL", "0.25"),
        "DATABASE_POOL_SIZE": os.environ.get("BENCH_DATABASE_POOL_SIZE", "10"),
    }
    service = ServiceProcess("trading", env=env)
    service.start(wait=False)
    await asyncio.to_thread(service.wait_listening, 120)  # slow to boot on a busy machine
    drains: list[float] = []
    warm_metrics = ""
    warm_cpu = engine_cpu = 0.0
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                metrics = (await client.get("/metrics")).text
                owned = [ln for ln in metrics.splitlines() if ln.startswith("trading_bots_owned ")]
                if owned and float(owned[0].split()[-1]) >= n:
                    break
                await asyncio.sleep(0.5)
            else:
                raise SystemExit(f"the engine did not adopt {n} bots within 60 s")

            for k in range(candles):
                index = history + k - 1 if k else history - 1
                started = time.monotonic()
                for symbol in symbols:
                    rows = series[symbol]
                    market.candles[("sim", symbol, "1m")] = rows[: index + 1]
                    market.set_price(symbol, rows[index + 1][1])
                for symbol in symbols:
                    await publish(
                        redis,
                        Event(
                            type=MARKET_DATA_UPDATED,
                            data={
                                "exchange": "sim",
                                "symbol": symbol,
                                "timeframe": "1m",
                                "candle": series[symbol][index],
                            },
                            source="bench",
                        ),
                    )
                candle_at = series[symbols[0]][index][0]
                async with sessionmaker() as session:
                    while time.monotonic() - started < 30:
                        seen = await session.scalar(
                            select(func.count())
                            .select_from(Bot)
                            .where(Bot.last_candle_at >= text(f"to_timestamp({candle_at / 1000})"))
                        )
                        if (seen or 0) >= n:
                            break
                        await asyncio.sleep(0.02)
                        await session.rollback()
                if k == 0:  # warm-up: history fetched, first position lookups
                    warm_metrics = (await client.get("/metrics")).text
                    warm_cpu = process_cpu_s(service)
                else:
                    drains.append(time.monotonic() - started)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
            metrics = (await client.get("/metrics")).text
            engine_cpu = process_cpu_s(service) - warm_cpu
    finally:
        await asyncio.to_thread(service.stop)
        if os.environ.get("BENCH_SHOW_ENGINE_LOG"):
            print(service.stderr_tail())
    figures = {}
    for label, name in (("signal", HISTOGRAM), ("candle", CANDLE_HISTOGRAM)):
        buckets, count = histogram(metrics, name)
        warm_buckets, warm_count = histogram(warm_metrics, name)
        before = dict(warm_buckets)
        buckets = [(le, n_le - before.get(le, 0.0)) for le, n_le in buckets]
        count -= warm_count
        figures[f"{label}_p50"] = quantile(buckets, count, 0.50)
        figures[f"{label}_p99"] = quantile(buckets, count, 0.99)
        figures["measured"] = int(count)
    async with sessionmaker() as session:
        orders = await session.scalar(select(func.count()).select_from(Order))
        # Bot client order ids are bot-{id}-{candle ts}-{side}: the largest burst of orders
        # that one closed candle set off.
        per_candle = func.split_part(Order.client_order_id, "-", 3)
        burst = await session.scalar(
            select(func.max(text("n"))).select_from(
                select(func.count().label("n")).select_from(Order).group_by(per_candle).subquery()
            )
        )
        errors = await session.scalar(
            select(func.count()).select_from(Bot).where(Bot.status == "error")
        )
        if os.environ.get("BENCH_SHOW_ENGINE_LOG"):
            for row in await session.execute(
                select(Bot.error, func.count()).where(Bot.error.is_not(None)).group_by(Bot.error)
            ):
                print("bot error:", row)
            for side_row in await session.execute(
                select(Order.side, Order.status, func.count()).group_by(Order.side, Order.status)
            ):
                print("orders:", tuple(side_row))
            for at_row in await session.execute(
                select(Bot.last_candle_at, func.count()).group_by(Bot.last_candle_at)
            ):
                print("bots at:", tuple(at_row))
    await redis.aclose()
    await engine.dispose()
    return {
        "load": load_average(),  # the machine's, over the run: shared CPUs skew the figures
        "bots": n,
        "orders": orders,
        "burst": burst or 0,
        **figures,
        # The engine's own CPU time per measured candle: what a busy machine's waits
        # do not inflate, so it compares code across runs when the wall times cannot.
        "cpu_ms": engine_cpu / max(1, len(drains)) * 1000,
        "drain_p50": sorted(drains)[len(drains) // 2] * 1000,
        "drain_max": max(drains) * 1000,
        "errors": errors,
    }


async def burst(
    n: int,
    rounds: int,
    *,
    database_url: str,
    redis_url: str,
    market: MarketStub,
    market_url: str,
    users: UserStub,
    user_url: str,
) -> None:
    """One transaction booking ``n`` bots' orders of one candle (``apply_candles``, as a
    burst of one setting's crossover), in this process: wall time and this process's CPU
    time per burst, alternately all buying and all selling. CPU time is what a machine
    busy with other work inflates least."""
    engine = create_engine(database_url, pool_size=4)
    redis = create_redis(redis_url)
    sessionmaker = create_sessionmaker(engine, redis)
    market.reset()
    users.reset()
    symbol = "S0/USDT"
    rows = walk(random.Random(7), rounds + 2)
    market.markets["sim"][symbol] = {
        "symbol": symbol,
        "base": "S0",
        "quote": "USDT",
        "precision": {"amount": 1e-6, "price": 1e-4},
        "limits": {"amount": {"min": 1e-6}, "cost": {"min": 1.0}},
        "maker": 0.001,
        "taker": 0.001,
    }
    market.set_price(symbol, rows[0][4])
    await seed_bots(sessionmaker, redis, users, [symbol], n, "typical")
    settings = TradingSettings(
        database_url=database_url,
        redis_url=redis_url,
        market_service_urls=market_url,
        user_service_urls=user_url,
        internal_api_token=UserStub.TOKEN,
        order_book_ttl_s=60,
        account_cache_ttl_s=60,
    )
    async with (
        ServiceClient("market", market_url, caller="bench") as market_http,
        ServiceClient("user", user_url, caller="bench", internal_token=UserStub.TOKEN) as user_http,
    ):
        orders = OrderService(
            sessionmaker=sessionmaker,
            redis=redis,
            market=MarketClient(market_http, book_ttl_s=60),
            users=UserClient(user_http, account_ttl_s=60),
            live=LiveBroker({}),
            settings=settings,
        )
        async with sessionmaker() as session:
            loaded = (await session.execute(select(Bot, Strategy).join(Strategy))).all()
        adapters = [
            Adapter(bot, create_strategy(row.strategy, row.parameters), orders)
            for bot, row in loaded
        ]
        walls, cpus, commits = [], [], []
        loop = asyncio.get_running_loop()
        for k in range(rounds + 1):
            candle = rows[k]
            action = SignalAction.BUY if k % 2 == 0 else SignalAction.SELL
            signal = TradingSignal(action, int(candle[0]), candle[4], "ma_crossover")
            work = [CandleWork(a, candle, signal, loop.time()) for a in adapters]
            started, wall, cpu = loop.time(), time.perf_counter(), time.process_time()
            outcomes = await apply_candles(orders, work)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            # Until the commit (the orders exist): signal-to-order, without the events'
            # publishing after it.
            committed = max(o.ordered_at or started for o in outcomes) - started
            placed = sum(1 for o in outcomes if o.result is not None and o.result.order_id)
            if placed != n:
                raise SystemExit(f"burst {k}: {placed} orders of {n}")
            if k:  # the first: caches warming
                walls.append(wall * 1000)
                cpus.append(cpu * 1000)
                commits.append(committed * 1000)
    await redis.aclose()
    await engine.dispose()
    walls.sort()
    cpus.sort()
    commits.sort()
    print(
        f"burst of {n} orders in one transaction, {rounds} bursts: "
        f"to the commit p50 {commits[len(commits) // 2]:.1f} ms (min {commits[0]:.1f}), "
        f"wall p50 {walls[len(walls) // 2]:.1f} ms (min {walls[0]:.1f}, max {walls[-1]:.1f}), "
        f"process CPU p50 {cpus[len(cpus) // 2]:.1f} ms (min {cpus[0]:.1f}, "
        f"max {cpus[-1]:.1f}), load {load_average()}"
    )


async def main(
    counts: list[int],
    candles: int,
    interval: float,
    symbol_count: int,
    profile: str,
    burst_size: int = 0,
) -> None:
    stores = await ScratchStores.open()
    database_url, redis_url = stores.database_url, stores.redis_url
    os.environ.update({"JWT_SECRET": TEST_JWT_SECRET})
    market, users = MarketStub(), UserStub()
    market_server = UvicornThread(market.app).start()
    user_server = UvicornThread(users.app).start()
    try:
        print(f"cpus: {os.cpu_count()}, load average (1/5/15 min): {load_average()}")
        if burst_size:
            await burst(
                burst_size,
                candles,
                database_url=database_url,
                redis_url=redis_url,
                market=market,
                market_url=market_server.url,
                users=users,
                user_url=user_server.url,
            )
            return
        print(
            f"reference (target): {TARGET_BOTS} bots on 1-minute candles, "
            f"signal-to-order p99 < {TARGET_P99_MS:.0f} ms"
        )
        print(
            f"ours: {candles} candles x {symbol_count} symbols, one every {interval:g} s, "
            f"'{profile}' MA periods, one engine process (first candle = warm-up, not counted)"
        )
        print(
            f"{'bots':>6} {'orders':>7} {'burst':>6} {'signal->order p50/p99 ms':>25} "
            f"{'candle->order p50/p99 ms':>25} {'all bots done p50/max ms':>25} "
            f"{'errors':>6} {'engine CPU ms/candle':>20}  "
            f"verdict (signal->order p99 < {TARGET_P99_MS:.0f} ms), load"
        )
        for n in counts:
            r = await run_one(
                n,
                database_url=database_url,
                redis_url=redis_url,
                market=market,
                market_url=market_server.url,
                users=users,
                user_url=user_server.url,
                candles=candles,
                interval=interval,
                symbol_count=symbol_count,
                profile=profile,
            )

            def ms(value: float | None) -> str:
                return "-" if value is None else f"{value:.1f}"

            ok = r["signal_p99"] is not None and r["signal_p99"] < TARGET_P99_MS
            signal = f"{ms(r['signal_p50'])} / {ms(r['signal_p99'])}"
            candle = f"{ms(r['candle_p50'])} / {ms(r['candle_p99'])}"
            drain = f"{r['drain_p50']:.0f} / {r['drain_max']:.0f}"
            verdict = "meets" if ok else "misses"
            print(
                f"{r['bots']:>6} {r['orders']:>7} {r['burst']:>6} {signal:>25} {candle:>25} "
                f"{drain:>25} {r['errors']:>6} {r['cpu_ms']:>20.0f}  "
                f"{verdict} ({r['measured']} orders measured), "
                f"load {r['load']}"
            )
    finally:
        market_server.stop()
        user_server.stop()
        await stores.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", default="100,250,500,1000")
    parser.add_argument("--candles", type=int, default=15)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--periods", choices=sorted(PERIODS), default="typical")
    parser.add_argument(
        "--burst",
        type=int,
        default=0,
        help="instead: book --candles bursts of this many orders in one transaction, in "
        "this process (the booking's own wall and CPU time)",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            [int(x) for x in args.bots.split(",")],
            args.candles,
            args.interval,
            args.symbols,
            args.periods,
            args.burst,
        )
    )
