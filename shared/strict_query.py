"""Unknown query parameters are refused (422), never silently ignored.

``/market/orderbook?limit=3`` used to answer the default depth as if ``limit`` meant
something. Every service router is an ``APIRouter(route_class=StrictQueryRoute)``: the
route compares the names in a query string with those its endpoint and dependencies
declare (a set computed once, when the handler is built); anything else is a validation
problem. A request without a query string costs nothing more. WebSocket routes take
:func:`refuse_unknown_query_params` as a dependency (the handshake is refused with 1008).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, Response, WebSocketException
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection

__all__ = ["StrictQueryRoute", "refuse_unknown_query_params"]

POLICY_VIOLATION = 1008

# id(route) -> the query names it takes; routes live as long as their app.
_ALLOWED: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of an endpoint and of every dependency below it."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _allowed(route: object) -> frozenset[str] | None:
    allowed = _ALLOWED.get(id(route))
    if allowed is None:
        dependant = getattr(route, "dependant", None)
        if not isinstance(dependant, Dependant):
            return None  # not a FastAPI route (docs, openapi.json): nothing to check
        allowed = _ALLOWED[id(route)] = frozenset(_query_names(dependant))
    return allowed


def _unknown(query: bytes, allowed: frozenset[str]) -> list[str]:
    names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    return sorted(names - allowed)


def _refusal(unknown: list[str], allowed: frozenset[str]) -> RequestValidationError:
    expected = ", ".join(sorted(allowed)) or "none"
    message = f"unknown query parameter; this route takes: {expected}"
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "extra_forbidden"} for name in unknown]
    )


class StrictQueryRoute(APIRoute):
    """An API route that refuses query parameters it does not declare (422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = frozenset(_query_names(self.dependant))

        async def strict_handler(request: Request) -> Response:
            query: bytes = request.scope.get("query_string", b"")
            if query:
                unknown = _unknown(query, allowed)
                if unknown:
                    raise _refusal(unknown, allowed)
            return await handler(request)

        return strict_handler


async def refuse_unknown_query_params(connection: HTTPConnection) -> None:
    """The same check as a dependency, for WebSocket routes (the handshake is refused)."""
    query: bytes = connection.scope.get("query_string", b"")
    if not query:
        return
    allowed = _allowed(connection.scope.get("route"))
    if allowed is None:
        return
    unknown = _unknown(query, allowed)
    if not unknown:
        return
    if connection.scope["type"] == "websocket":
        reason = f"unknown query parameter: {', '.join(unknown)}"[:120]
        raise WebSocketException(code=POLICY_VIOLATION, reason=reason)
    raise _refusal(unknown, allowed)
