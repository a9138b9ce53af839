"""Distributed traces with OpenTelemetry: off, and free, unless an OTLP endpoint is set.

One order placed through the gateway is one trace: the gateway's span for the request,
the trading engine's (FastAPI's own telemetry; the trace context crossed in
``traceparent``), its SQL, Redis and HTTP calls, then, over Redis Streams, the
notification service's span for the event (the context crossed in the event envelope: the
``traceparent`` field of the stream entry, written when the event is staged in the outbox).

Switched on per process by the standard variables ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), exported over OTLP/HTTP in batches off the event
loop; ``OTEL_SDK_DISABLED=true`` turns it off again. When off, nothing here runs per
request: no provider, no instrumented library, FastAPI's telemetry switched off, the
gateway's proxy unwrapped, and the event envelope unchanged (one attribute test per event).

Sampling: a trace starts only at an entry point (a request served, an event consumed; the
share ``OTEL_TRACES_SAMPLER_ARG``, 1 by default) and every span follows its parent's
decision, so background loops (the outbox relay, feeds, bot syncs) do not start traces of
their own with every SQL statement or Redis call.

    configure(settings)       once per process, by ``shared.app.create_service_app``
    fastapi_telemetry()       the ``telemetry`` option of each service's FastAPI app
    inject(fields)            the current trace context into an event envelope
    consumer_spans(...)       a span per consumed entry, child of the context it carries
    traced_proxy(app)         the gateway's server span around its proxy (gateway/proxy.py)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    from shared.settings import ServiceSettings

__all__ = [
    "configure",
    "consumer_spans",
    "enabled",
    "fastapi_telemetry",
    "flush",
    "inject",
    "install",
    "traced_proxy",
    "uninstall",
]

# The W3C trace-context fields an event envelope may carry (beside id, type, data, ...).
ENVELOPE_FIELDS = ("traceparent", "tracestate")
_UNTRACED_PATHS = frozenset({"/health", "/health/ready", "/health/live", "/metrics"})
_TELEMETRY_OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    instrumentors: ClassVar[list[Any]] = []


def enabled() -> bool:
    """Is this process tracing?"""
    return _State.tracer is not None


def configure(settings: ServiceSettings) -> bool:
    """Trace this process when the settings name an OTLP endpoint (the first call wins:
    one provider per process). Returns whether tracing is on."""
    if _State.provider is not None:
        return True
    endpoint = settings.otlp_traces_endpoint
    if not endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Headers, timeout, compression and certificates: the exporter's own OTEL_* variables.
    install(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)),
        service=settings.service_name,
        ratio=settings.otel_traces_sampler_arg,
    )
    return True


def install(
    processor: SpanProcessor,
    *,
    service: str,
    ratio: float = 1.0,
    instrument_libraries: bool = True,
) -> TracerProvider:
    """Trace this process into ``processor`` (``configure`` uses the OTLP exporter; tests an
    in-memory one). ``instrument_libraries``: client spans for httpx, asyncpg and Redis."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "tradebot",
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    provider = TracerProvider(resource=resource, sampler=_entry_point_sampler(ratio))
    provider.add_span_processor(processor)
    _State.provider = provider
    _State.tracer = provider.get_tracer("tradebot")
    if instrument_libraries:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        instrumentors = (HTTPXClientInstrumentor(), AsyncPGInstrumentor(), RedisInstrumentor())  # type: ignore[no-untyped-call]
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
            _State.instrumentors.append(instrumentor)
    return provider


def uninstall() -> None:
    """Stop tracing this process (tests): flush, shut the provider down, undo the libraries'
    instrumentation. Apps built while tracing keep their FastAPI telemetry."""
    provider = _State.provider
    for instrumentor in _State.instrumentors:
        instrumentor.uninstrument()
    _State.instrumentors.clear()
    _State.provider = None
    _State.tracer = None
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 5000) -> None:
    """Export what is buffered (a service's shutdown)."""
    if _State.provider is not None:
        _State.provider.force_flush(timeout_ms)


def fastapi_telemetry() -> dict[str, Any]:
    """The ``telemetry`` option of a service's FastAPI app: server spans on our provider
    (health checks and scrapes left out), or FastAPI's telemetry switched off, so that an
    untraced request does not even look for a provider. Metrics stay Prometheus's."""
    if _State.provider is None:
        return dict(_TELEMETRY_OFF)
    return {
        "tracer_provider": _State.provider,
        "metrics": False,
        "logs": False,
        "operation_spans": False,  # one span per request, not per dependency
        "exclude": _untraced,
    }


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in _UNTRACED_PATHS


def inject(fields: dict[str, str]) -> None:
    """Add the current trace context to an event envelope (nothing when off or untraced)."""
    if _State.tracer is not None:
        propagate.inject(fields)


class _Entry(Protocol):
    """A stream entry as read (shared.events.StreamEntry)."""

    @property
    def stream(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def fields(self) -> Mapping[Any, Any]: ...


class _FieldsGetter(Getter[Mapping[Any, Any]]):
    """Reads a stream entry's fields, whether the client decoded them or not."""

    def get(self, carrier: Mapping[Any, Any], key: str) -> list[str] | None:
        value = carrier.get(key, carrier.get(key.encode()))
        if value is None:
            return None
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[Any, Any]) -> list[str]:
        return [k.decode() if isinstance(k, bytes) else str(k) for k in carrier]


_FIELDS = _FieldsGetter()
_NO_SPANS: AbstractContextManager[None] = nullcontext()


def consumer_spans(group: str, entries: Sequence[_Entry]) -> AbstractContextManager[None]:
    """A CONSUMER span per entry, each the child of the context its envelope carries (a
    root when none), around the work on them. The span is current when the batch holds one
    entry, so the handler's SQL and calls nest under it."""
    if _State.tracer is None or not entries:
        return _NO_SPANS
    return _consumer_spans(_State.tracer, group, entries)


@contextmanager
def _consumer_spans(tracer: trace.Tracer, group: str, entries: Sequence[_Entry]) -> Iterator[None]:
    spans = [
        tracer.start_span(
            f"process {entry.stream}",
            context=propagate.extract(entry.fields, getter=_FIELDS),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": entry.stream,
                "messaging.consumer.group.name": group,
                "messaging.message.id": entry.id,
                "messaging.batch.message_count": len(entries),
            },
        )
        for entry in entries
    ]
    current = trace.use_span(spans[0], end_on_exit=False) if len(spans) == 1 else nullcontext()
    try:
        with current:
            yield
    except BaseException as exc:
        for span in spans:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
        raise
    finally:
        for span in spans:
            span.end()


class _HeadersGetter(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads ASGI headers (lower-case byte names)."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode()
        values = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_HEADERS = _HeadersGetter()


def traced_proxy(app: ASGIApp) -> ASGIApp:
    """``app`` (the gateway's proxy) inside a SERVER span per HTTP request, whose context
    replaces the client's ``traceparent`` in the headers the proxy forwards: the upstream's
    span is its child. Only called when tracing is on (the proxy is not wrapped otherwise)."""
    tracer = _State.tracer
    if tracer is None:
        return app

    async def traced(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        parent = propagate.extract(headers, getter=_HEADERS)
        method: str = scope["method"]
        route = getattr(scope.get("route"), "path", scope["path"])
        span = tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": route,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        current = trace.set_span_in_context(span, parent)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=current)
        replaced = {name.encode() for name in carrier}
        scope["headers"] = [(k, v) for k, v in headers if k not in replaced] + [
            (k.encode(), v.encode("latin-1")) for k, v in carrier.items()
        ]
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(current)
        try:
            await app(scope, receive, send_status)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR)
            raise
        finally:
            otel_context.detach(token)
            if status:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            span.end()

    return traced


def _entry_point_sampler(ratio: float) -> Any:
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    class EntryPoints(Sampler):
        """Roots only at a request served or an event consumed, ``ratio`` of them."""

        def __init__(self) -> None:
            self.ratio = TraceIdRatioBased(ratio)

        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind not in (SpanKind.SERVER, SpanKind.CONSUMER):
                return SamplingResult(Decision.DROP)
            return self.ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"EntryPoints{{{self.ratio.get_description()}}}"

    return ParentBased(root=EntryPoints())
