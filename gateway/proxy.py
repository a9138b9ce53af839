"""The gateway's hot path: a pure ASGI middleware that proxies `/market`, `/user`,
`/trading`, `/analysis` and `/notifications` to their upstreams.

No FastAPI routing, dependency injection or body buffering per request: the middleware
checks the JWT (memoised signature check + one Redis script that both counts the request
against the rate limit and confirms the session), picks an instance round-robin among
those whose breaker is not open, and streams the request and response through a pooled
keep-alive connection (:mod:`gateway.http_client`). Everything else (`/health`,
`/metrics`, `/docs`) falls through to the FastAPI app underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission import AccessClaims, Admission, Admitter, TokenVerifier
from gateway.http_client import (
    Body,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
)
from gateway.metrics import BREAKER_REJECTED, RATE_LIMITED, UPSTREAM_FAILURES, UPSTREAM_LATENCY
from gateway.problems import send_problem
from gateway.upstreams import Instance, Upstream, UpstreamRegistry
from gateway.websocket import proxy_websocket
from shared import tracing
from shared.auth import bearer_token, session_key
from shared.errors import Unauthorized
from shared.forwarding import TrustedProxies
from shared.logging import RequestLogMiddleware

log = structlog.get_logger("gateway")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself, never taken from the client.
REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"content-length",  # set again for the body actually forwarded
    b"expect",  # uvicorn already answered 100-continue to the client
    b"x-user-id",
    b"x-forwarded-host",
    b"x-forwarded-proto",
}
# The gateway's own per-hop headers (uvicorn adds date/server; we add the rest).
RESPONSE_DROP = HOP_BY_HOP | {
    b"date",
    b"server",
    b"x-request-id",
    b"x-ratelimit-limit",
    b"x-ratelimit-remaining",
    b"x-ratelimit-reset",
}
PUBLIC_POSTS = frozenset({"/user/auth/register", "/user/auth/login", "/user/auth/refresh"})
SMALL_RESPONSE = 256 * 1024
# As in shared.app: what browsers may read from a cross-origin response.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]


@dataclass(frozen=True)
class ProxyRoute:
    """Stands in for a Starlette route so request logs and metrics label by upstream."""

    path: str


def is_public(method: str, path: str) -> bool:
    """Register/login/refresh and reads of market data need no token (docs/api.md)."""
    if method == "OPTIONS":
        return True
    if path.startswith("/market/") or path == "/market":
        return method in ("GET", "HEAD")
    return method == "POST" and path.rstrip("/") in PUBLIC_POSTS


def is_internal(path: str) -> bool:
    """Service-to-service routes are never reachable from outside."""
    lowered = path.lower()
    if "internal" not in lowered and ".." not in lowered:
        return False  # the common case, without splitting the path
    return any(part in ("internal", "..") for part in lowered.split("/"))


@dataclass(slots=True)
class RequestHead:
    """One pass over the client's headers: what to forward, and what the proxy needs."""

    forward: list[tuple[bytes, bytes]]
    authorization: bytes | None
    content_length: bytes | None
    chunked: bool

    @classmethod
    def of(cls, scope: Scope) -> RequestHead:
        """Hop-by-hop and gateway-owned fields dropped; X-Forwarded-* and X-Request-ID
        added (the verified X-User-ID is added after admission). X-Forwarded-For names the
        one client address the gateway believes (:meth:`GatewayProxy.handle`), never what
        the client wrote itself."""
        forward: list[tuple[bytes, bytes]] = []
        authorization = length = None
        host = b""
        chunked = has_request_id = False
        for key, value in scope["headers"]:
            if key in REQUEST_DROP:
                if key == b"host":
                    host = value
                elif key == b"content-length":
                    length = value
                elif key == b"transfer-encoding":
                    chunked = True
                continue
            if key == b"x-forwarded-for":
                continue
            if key == b"authorization":
                authorization = value
            elif key == b"x-request-id":
                has_request_id = True
            forward.append((key, value))
        forward.append((b"x-forwarded-for", _client_ip(scope).encode()))
        forward.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        if host:
            forward.append((b"x-forwarded-host", host))
        if not has_request_id:
            request_id = scope.get("state", {}).get("request_id")
            if request_id:
                forward.append((b"x-request-id", request_id.encode()))
        return cls(forward, authorization, length, chunked)


@dataclass
class GatewayRuntime:
    """What the lifespan opens and the proxy uses (set before the first request)."""

    admitter: Admitter | None = None


class GatewayProxy:
    """The proxied prefixes' handler: the request log, CORS and the proxy, in front of
    FastAPI (:class:`gateway.main.GatewayApp` sends only proxied paths here)."""

    def __init__(
        self,
        *,
        registry: UpstreamRegistry,
        verifier: TokenVerifier,
        runtime: GatewayRuntime,
        buffer_request_body_bytes: int,
        service: str,
        cors_origins: list[str],
        trusted: TrustedProxies | None = None,
    ) -> None:
        self.registry = registry
        self.trusted = trusted or TrustedProxies(())
        self.verifier = verifier
        self.runtime = runtime
        self.buffer_limit = buffer_request_body_bytes
        self.routes = {name: ProxyRoute(f"/{prefix}/*") for prefix, name in _prefixes()}
        self.latency = {name: UPSTREAM_LATENCY.labels(name) for _, name in _prefixes()}
        entry: ASGIApp = self._proxy
        if cors_origins:
            entry = CORSMiddleware(
                entry,
                allow_origins=cors_origins,
                allow_credentials=True,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS,
            )
        # The same request log (one JSON line, X-Request-ID, metrics) as every service.
        self.entry: ASGIApp = RequestLogMiddleware(entry, service=service)
        if tracing.enabled():
            # A span per request, its context forwarded upstream; never wrapped when off.
            self.entry = tracing.traced_proxy(self.entry)

    def upstream_for(self, scope: Scope) -> Upstream | None:
        """The upstream an HTTP or WebSocket request goes to, or None (not proxied)."""
        if scope["type"] not in ("http", "websocket"):
            return None
        path: str = scope["path"]
        return self.registry.for_prefix(path.split("/", 2)[1] if path[:1] == "/" else "")

    def handle(
        self, scope: Scope, receive: Receive, send: Send, upstream: Upstream
    ) -> Awaitable[None]:
        """The request's handling, to await (a plain function: one coroutine frame less on
        every resumption of the request)."""
        scope["route"] = self.routes[upstream.name]
        scope["gateway.upstream"] = upstream
        if self.trusted:
            self._believe_forwarded_for(scope)
        return self.entry(scope, receive, send)

    def _believe_forwarded_for(self, scope: Scope) -> None:
        """Behind a listed proxy, the client is who that proxy says (shared.forwarding);
        the rate limit, the request log and X-Forwarded-For upstream then name it."""
        values = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
        client = scope.get("client")
        if not values or not client:
            return
        forwarded = b", ".join(values).decode("latin-1")
        address = self.trusted.client_address(str(client[0]), forwarded)
        if address is not None and address != client[0]:
            scope["client"] = (address, 0)

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream: Upstream = scope["gateway.upstream"]
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, upstream)
            return
        path: str = scope["path"]
        if is_internal(path):
            await send_problem(send, 404, "Not Found", path)
            return
        try:
            await self._http(scope, receive, send, upstream)
        except Exception:
            # Outside FastAPI's error middleware: answer 500 ourselves when still possible.
            log.exception("proxy_error", path=path)
            with contextlib.suppress(Exception):
                await send_problem(send, 500, "An unexpected error occurred.", path)

    # --- authentication and admission ---------------------------------------------------

    async def _admit(
        self,
        scope: Scope,
        send: Send,
        upstream: Upstream,
        authorization: bytes | None,
        *,
        public: bool,
    ) -> tuple[AccessClaims | None, Admission | None] | None:
        """(claims, admission), or None after answering 401/429/503 on the caller's behalf."""
        path: str = scope["path"]
        claims: AccessClaims | None = None
        if authorization is None and scope["type"] == "websocket":
            authorization = _query_token(scope)
        try:
            if authorization is not None:
                claims = self.verifier.verify(bearer_token(authorization.decode("latin-1")))
            elif not public:
                raise Unauthorized("Missing bearer token.")
        except Unauthorized as exc:
            if not public:
                await self._refuse(scope, send, 401, exc.detail, [(b"www-authenticate", b"Bearer")])
                return None
            claims = None
        admitter = self.runtime.admitter
        if admitter is None:
            raise RuntimeError("the gateway's lifespan has not run")
        caller = f"user:{claims.user_id}" if claims else f"ip:{_client_ip(scope)}"
        try:
            admission = await admitter.admit(
                caller, session_key(claims.session_id) if claims else None
            )
        except (RedisError, OSError) as exc:
            log.warning("admission_unavailable", path=path, error=f"{type(exc).__name__}: {exc}")
            await self._refuse(
                scope,
                send,
                503,
                "Authentication is unavailable; retry later.",
                [(b"retry-after", b"5")],
            )
            return None
        if claims is not None and admission.session_owner != claims.user_id:
            if not public:
                await self._refuse(
                    scope,
                    send,
                    401,
                    "The session has ended; log in again.",
                    [(b"www-authenticate", b"Bearer"), *admission.headers()],
                )
                return None
            claims = None
        if not admission.allowed:
            RATE_LIMITED.labels(upstream.name).inc()
            await self._refuse(
                scope,
                send,
                429,
                "Rate limit exceeded; slow down.",
                [(b"retry-after", str(admission.reset_seconds).encode()), *admission.headers()],
            )
            return None
        if claims is not None:
            scope.setdefault("state", {})["user_id"] = claims.user_id
        return claims, admission

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        detail: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        if scope["type"] == "websocket":
            # Per docs/api.md, a bad token closes the socket with 4401 (after the handshake, so
            # browsers see the code); other refusals use the 1008 policy code.
            await send({"type": "websocket.accept"})
            await send(
                {
                    "type": "websocket.close",
                    "code": 4401 if status == 401 else 1008,
                    "reason": detail[:120],
                }
            )
            return
        await send_problem(send, status, detail, scope["path"], headers)

    # --- HTTP ---------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> None:
        method: str = scope["method"]
        head = RequestHead.of(scope)
        admitted = await self._admit(
            scope, send, upstream, head.authorization, public=is_public(method, scope["path"])
        )
        if admitted is None:
            return
        claims, admission = admitted
        headers = head.forward
        if claims is not None:
            headers.append((b"x-user-id", claims.user_id.encode()))
        body = await self._request_body(head, receive)
        if head.content_length is not None and body is not None and not head.chunked:
            if not isinstance(body, bytes):
                headers.append((b"content-length", head.content_length))
        replayable = body is None or isinstance(body, bytes)
        target = scope.get("raw_path") or scope["path"].encode()
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        verb = method.encode()
        extra = admission.headers() if admission else []
        latency = self.latency[upstream.name]

        tried_any = False
        for instance in upstream.candidates():
            if not instance.breaker.allow():
                continue
            tried_any = True
            started = time.perf_counter()
            try:
                response = await instance.http.request(
                    verb, target, headers, body, replayable=replayable
                )
            except UpstreamConnectError:
                self._failed(upstream, instance, "connect")
                if not replayable:
                    break
                continue  # nothing reached that instance: the next one may take it
            except UpstreamTimeout:
                self._failed(upstream, instance, "timeout")
                await send_problem(
                    send,
                    504,
                    f"The {upstream.name} service did not answer in time.",
                    scope["path"],
                    extra,
                )
                return
            except UpstreamProtocolError:
                self._failed(upstream, instance, "protocol")
                await send_problem(
                    send,
                    502,
                    f"The {upstream.name} service sent a broken response.",
                    scope["path"],
                    extra,
                )
                return
            except BaseException:
                instance.breaker.record_failure()  # e.g. the client went away mid-request
                raise
            latency.observe(time.perf_counter() - started)
            await self._relay(verb, response, send, instance, upstream, extra)
            return

        if tried_any:
            detail = f"The {upstream.name} service is unavailable; retry later."
        else:
            BREAKER_REJECTED.labels(upstream.name).inc()
            detail = f"The {upstream.name} service is failing; its circuit breaker is open."
        await send_problem(
            send,
            503,
            detail,
            scope["path"],
            [(b"retry-after", str(upstream.retry_after()).encode()), *extra],
        )

    async def _relay(
        self,
        method: bytes,
        response: UpstreamResponse,
        send: Send,
        instance: Instance,
        upstream: Upstream,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        status = response.status
        try:
            headers = [(k, v) for k, v in response.headers if k.lower() not in RESPONSE_DROP]
            headers.extend(extra)
            length = response.content_length
            if method == b"HEAD" or (length is not None and length <= SMALL_RESPONSE):
                body = await response.read()
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send({"type": "http.response.start", "status": status, "headers": headers})
                async for chunk in response.iter_chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except UpstreamError:
            self._failed(upstream, instance, "body")
            raise
        finally:
            response.release()
        if status >= 500:
            self._failed(upstream, instance, "5xx")
        else:
            instance.breaker.record_success()

    def _failed(self, upstream: Upstream, instance: Instance, kind: str) -> None:
        instance.breaker.record_failure()
        UPSTREAM_FAILURES.labels(upstream.name, kind).inc()

    async def _request_body(self, head: RequestHead, receive: Receive) -> Body:
        """The body to forward: None, the bytes of a small one, or a stream of a large one."""
        length = head.content_length
        if not head.chunked and (length is None or length == b"0"):
            return None
        if not head.chunked and length is not None and int(length) <= self.buffer_limit:
            parts = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise asyncio.CancelledError  # the client went away
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            return b"".join(parts)

        async def stream() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return

        return stream()

    # --- WebSocket ----------------------------------------------------------------------

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, upstream: Upstream
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path: str = scope["path"]
        if is_internal(path):
            await send({"type": "websocket.close", "code": 1008})
            return
        head = RequestHead.of(scope)
        admitted = await self._admit(
            scope, send, upstream, head.authorization, public=path.startswith("/market/")
        )
        if admitted is None:
            return
        claims, _ = admitted
        if claims is not None:
            head.forward.append((b"x-user-id", claims.user_id.encode()))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.forward]
        await proxy_websocket(scope, receive, send, upstream, headers)


def _prefixes() -> list[tuple[str, str]]:
    from gateway.upstreams import PREFIXES

    return list(PREFIXES.items())


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _query_token(scope: Scope) -> bytes | None:
    """`?token=` on a WebSocket URL (browsers cannot set headers on a socket)."""
    query: bytes = scope.get("query_string", b"")
    for part in query.split(b"&"):
        if part.startswith(b"token="):
            from urllib.parse import unquote_to_bytes

            return b"Bearer " + unquote_to_bytes(part[6:])
    return None
