"""Unknown query parameters are refused (422), never silently ignored.

``/market/orderbook?limit=3`` used to answer the default depth as if ``limit`` meant
something. :func:`refuse_unknown_query_params` is an app-wide dependency (installed by
``shared.app.create_service_app``): it compares the names in the query string with those
the route's endpoint and dependencies declare, a set computed once per route. A request
naming anything else is a validation problem; a WebSocket handshake is refused with 1008.
Nothing is parsed for a request without a query string.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import WebSocketException
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection

__all__ = ["refuse_unknown_query_params"]

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


async def refuse_unknown_query_params(connection: HTTPConnection) -> None:
    """422 (or a refused WebSocket) when the query names a parameter the route lacks."""
    query: bytes = connection.scope.get("query_string", b"")
    if not query:
        return
    allowed = _allowed(connection.scope.get("route"))
    if allowed is None:
        return
    names = {name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
    unknown = sorted(names - allowed)
    if not unknown:
        return
    if connection.scope["type"] == "websocket":
        reason = f"unknown query parameter: {', '.join(unknown)}"[:120]
        raise WebSocketException(code=POLICY_VIOLATION, reason=reason)
    expected = ", ".join(sorted(allowed)) or "none"
    message = f"unknown query parameter; this route takes: {expected}"
    raise RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "extra_forbidden"} for name in unknown]
    )
