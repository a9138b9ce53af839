"""Unknown query parameters are refused (422), never silently ignored.

``/market/orderbook?limit=3`` used to answer the default depth as if ``limit`` meant
something. :func:`refuse_unknown_query_params` wraps each route of an app once, at
assembly, with the set of query names its endpoint and dependencies declare; a request
naming anything else is a validation problem (a WebSocket is closed with 1008). The check
costs a set lookup per parameter and nothing for a request without a query string.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["refuse_unknown_query_params"]

POLICY_VIOLATION = 1008


class _KnownQueryOnly:
    """The route's own ASGI app behind a check of the query string's names."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed
        self.expected = ", ".join(sorted(allowed)) or "none"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"")
        if query:
            names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
            unknown = sorted(names - self.allowed)
            if unknown:
                await self._refuse(scope, send, unknown)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, unknown: list[str]) -> None:
        message = f"unknown query parameter; this route takes: {self.expected}"
        if scope["type"] == "websocket":
            reason = f"unknown query parameter: {', '.join(unknown)}"[:120]
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": reason})
            return
        # Rendered by the app's validation handler like any other 422.
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": message, "type": "extra_forbidden"}
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of an endpoint and of every dependency below it."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def refuse_unknown_query_params(app: FastAPI) -> None:
    """Wrap every API and WebSocket route of ``app`` (call after its routers are included)."""
    for route in app.router.routes:
        if isinstance(route, APIRoute | APIWebSocketRoute) and not isinstance(
            route.app, _KnownQueryOnly
        ):
            route.app = _KnownQueryOnly(route.app, frozenset(_query_names(route.dependant)))
