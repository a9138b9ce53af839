"""Prometheus metrics of the bot runner."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from trading_engine.bots.batch import CandleOutcome

BOTS_OWNED = Gauge("trading_bots_owned", "Running bots this replica owns")
CANDLES_SKIPPED = Counter(
    "trading_bot_candles_skipped",
    "Missed candles not replayed to a bot (past BOT_REPLAY_LIMIT or gone from the market)",
)
# Fine around the 100 ms objective, so its p99 reads to 10 ms.
_LATENCY_BUCKETS = (
    0.005,
    *(i / 100 for i in range(1, 11)),
    0.125,
    0.15,
    0.2,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
CANDLE_TO_ORDER = Histogram(
    "trading_candle_to_order_seconds",
    "From a closed candle reaching this replica to a bot's committed order",
    buckets=_LATENCY_BUCKETS,
)
SIGNAL_TO_ORDER = Histogram(
    "trading_signal_to_order_seconds",
    "From a bot's signal being computed to its committed order",
    buckets=_LATENCY_BUCKETS,
)


def observe_order_latency(outcome: CandleOutcome) -> None:
    """Signal-to-order and candle-to-order of a candle that committed an order."""
    if outcome.ordered_at is not None and outcome.signal_at is not None:
        SIGNAL_TO_ORDER.observe(outcome.ordered_at - outcome.signal_at)
        if outcome.woken_at is not None:
            CANDLE_TO_ORDER.observe(outcome.ordered_at - outcome.woken_at)
