"""Prometheus metrics of the gateway (request counts and latencies per route come from
the shared request-log middleware, whose route label is the upstream's prefix)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_response_seconds",
    "Time from forwarding a request to the upstream's response headers",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total",
    "Upstream calls that failed (connect, timeout, protocol, 5xx), counted by the breaker",
    ["upstream", "kind"],
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused with 429 by the rate limit", ["upstream"]
)
BREAKER_REJECTED = Counter(
    "gateway_breaker_rejected_total",
    "Requests answered 503 at once because every instance's breaker was open",
    ["upstream"],
)
