"""Trace context across the event bus (shared/tracing.py, shared/events.py), with an
in-memory span exporter; the whole path through real services is tests/deploy/test_traces.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from shared import tracing
from shared.db import commit
from shared.events import Event, EventConsumer, stage, stream_for
from shared.settings import ServiceSettings

STREAM = stream_for("pair.listed")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install(SimpleSpanProcessor(exporter), service="test", instrument_libraries=False)
    try:
        yield exporter
    finally:
        tracing.uninstall()


async def noop(event: Event, session) -> None:
    return None


def event() -> Event:
    return Event(type="pair.listed", data={"symbol": "BTC/USDT"}, source="test")


async def a_consumer(sessionmaker, redis: Redis) -> EventConsumer:
    worker = EventConsumer(
        redis, sessionmaker, group="test-service", handlers={STREAM: noop}, block_ms=50
    )
    await worker.ensure_groups()
    return worker


async def last_envelope(redis: Redis) -> dict[str, str]:
    ((_, fields),) = await redis.xrevrange(STREAM, count=1)
    return fields


async def test_a_consumed_event_is_a_child_span_of_the_request_that_staged_it(
    spans: InMemorySpanExporter, sessionmaker, redis: Redis
) -> None:
    worker = await a_consumer(sessionmaker, redis)
    tracer = trace.get_tracer("test", tracer_provider=tracing._State.provider)
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as request:
        async with sessionmaker() as tx:
            stage(tx, event())
            await commit(tx)
    # Nothing carries the context now but the stream entry (and the outbox row before it).
    trace_id = request.get_span_context().trace_id
    assert (await last_envelope(redis))["traceparent"].split("-")[1] == f"{trace_id:032x}"
    assert await worker.process_once(block_ms=10) == 1

    consumed = [s for s in spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert [s.name for s in consumed] == [f"process {STREAM}"]
    assert consumed[0].context.trace_id == request.get_span_context().trace_id
    assert consumed[0].parent is not None
    assert consumed[0].parent.span_id == request.get_span_context().span_id
    assert consumed[0].attributes["messaging.consumer.group.name"] == "test-service"


async def test_an_event_from_a_background_loop_starts_a_trace_of_its_own_when_consumed(
    spans: InMemorySpanExporter, sessionmaker, redis: Redis
) -> None:
    worker = await a_consumer(sessionmaker, redis)
    async with sessionmaker() as tx:  # no span current: nothing to carry
        stage(tx, event())
        await commit(tx)
    assert "traceparent" not in await last_envelope(redis)
    await worker.process_once(block_ms=10)
    (consumed,) = spans.get_finished_spans()
    assert consumed.kind == SpanKind.CONSUMER
    assert consumed.parent is None


async def test_with_tracing_off_the_envelope_is_unchanged_and_no_provider_exists(
    sessionmaker, redis: Redis
) -> None:
    assert not tracing.enabled()
    assert tracing.fastapi_telemetry() == {"tracing": False, "metrics": False, "logs": False}
    assert event().envelope().keys() == event().to_fields().keys()


def test_tracing_is_on_only_when_an_otlp_endpoint_is_configured() -> None:
    assert ServiceSettings().otlp_traces_endpoint == ""
    base = ServiceSettings(otel_exporter_otlp_endpoint="http://collector:4318/")
    assert base.otlp_traces_endpoint == "http://collector:4318/v1/traces"
    own = ServiceSettings(otel_exporter_otlp_traces_endpoint="http://c:4318/traces")
    assert own.otlp_traces_endpoint == "http://c:4318/traces"
    disabled = ServiceSettings(otel_exporter_otlp_endpoint="http://c:4318", otel_sdk_disabled=True)
    assert disabled.otlp_traces_endpoint == ""
