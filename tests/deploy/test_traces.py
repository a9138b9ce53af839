"""One order placed through the gateway is one trace: the gateway's span, the trading
engine's (the context crossed over HTTP in `traceparent`), and, after the event went
through Redis Streams with the context in its envelope, the notification service's. The
services export over OTLP/HTTP to an in-memory collector (tests/otlp_collector.py)."""

from __future__ import annotations

import secrets

import pytest

from tests.deploy.stack import Stack, client_of, paper_order, signed_up
from tests.otlp_collector import CollectedSpan
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def one(spans: list[CollectedSpan], **wanted: str) -> CollectedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


@pytest.mark.timeout(120)
async def test_an_order_is_one_trace_from_the_gateway_through_the_engine_to_notifications(
    stack: Stack,
) -> None:
    async with client_of(stack, "198.51.100.1") as gateway:
        auth = await signed_up(gateway)
        # The caller's own span: the gateway continues its trace (W3C trace context).
        trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        placed = await gateway.post(
            "/trading/orders",
            json=paper_order(),
            headers={**auth, "traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert placed.status_code == 201, placed.text
        assert placed.json()["status"] == "filled"

    async def whole_trace() -> list[CollectedSpan] | None:
        spans = stack.collector.in_trace(trace_id)
        consumed = {s.name for s in spans if s.service == "notification" and s.kind == "CONSUMER"}
        # A fill is announced twice (trade.executed and notification.requested).
        wanted = {"process events:trade.executed", "process queue:notifications"}
        return spans if wanted <= consumed else None

    spans = await eventually(whole_trace, timeout=30, interval=0.2)

    gateway_span = one(spans, service="gateway", kind="SERVER")
    assert gateway_span.name == "POST /trading/*"
    assert gateway_span.parent_span_id == caller_span
    assert gateway_span.attributes["http.response.status_code"] == 201
    # Across HTTP: the engine's request span is the child of the gateway's.
    engine_span = one(spans, service="trading", kind="SERVER")
    assert engine_span.name == "POST /trading/orders"
    assert engine_span.parent_span_id == gateway_span.span_id
    engine_spans = {s.span_id for s in spans if s.service == "trading"}
    # Its SQL and its calls to other services are in the trace, under it.
    clients = [s for s in spans if s.service == "trading" and s.kind == "CLIENT"]
    assert {s.parent_span_id for s in clients} <= engine_spans
    assert any(s.attributes.get("db.system.name", s.attributes.get("db.system")) for s in clients)
    # The user service answered the engine's permission check inside the same trace (and
    # the notification service's preferences lookup, further down).
    asked = {s.parent_span_id for s in spans if s.service == "user" and s.kind == "SERVER"}
    assert asked & engine_spans
    assert asked <= engine_spans | {s.span_id for s in spans if s.service == "notification"}
    # Across the stream: the notification service's spans are children of the engine's
    # span that staged the events, found only in the entries' envelopes.
    for consumed in (s for s in spans if s.service == "notification" and s.kind == "CONSUMER"):
        assert consumed.parent_span_id == engine_span.span_id, consumed
        assert consumed.attributes["messaging.consumer.group.name"] == "notification"
    assert {s.service for s in spans} >= {"gateway", "trading", "user", "notification"}
