"""Errors rendered as RFC 9457 problem details (``application/problem+json``).

Hierarchy::

    AppError                      500  base; never raised directly
    ├── BadRequest                400
    │   └── ValidationFailed      422  (also FastAPI's RequestValidationError)
    ├── Unauthorized              401
    ├── Forbidden                 403
    ├── NotFound                  404
    ├── Conflict                  409
    ├── RateLimited               429  with Retry-After
    └── DependencyUnavailable     503  with Retry-After (database, Redis, an upstream, an exchange)
        └── ServiceUnavailable    503  another TradeBot service, named (shared.service_client)

Routes and services raise these; :func:`install_error_handlers` renders them. A passing
fault of a dependency anywhere becomes a 503 with ``Retry-After`` (:func:`database_unavailable`
says which database errors are passing: a lost or refused connection, a server shutting
down, an exhausted pool, a deadlock), and anything unexpected a 500 problem without a trace
(the trace goes to the log). Exchange errors build on these classes in
:mod:`shared.exchange_errors`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("errors")


class AppError(Exception):
    status: int = 500
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    status, title = 400, "Bad Request"


class ValidationFailed(BadRequest):
    status, title = 422, "Unprocessable Content"


class Unauthorized(AppError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(AppError):
    status, title = 403, "Forbidden"


class NotFound(AppError):
    status, title = 404, "Not Found"


class Conflict(AppError):
    status, title = 409, "Conflict"


class RateLimited(AppError):
    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


class DependencyUnavailable(AppError):
    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(retry_after)


class ServiceUnavailable(DependencyUnavailable):
    """No replica of another TradeBot service answered: refused, timed out, answered 5xx,
    or its circuit breaker is open (``circuit_open``: known down, nothing was tried)."""

    def __init__(
        self,
        service: str,
        detail: str | None = None,
        *,
        retry_after: int = 5,
        circuit_open: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            detail or f"The {service} service is unavailable.", retry_after=retry_after, **kwargs
        )
        self.service = service
        self.circuit_open = circuit_open


# RFC 9110 renamed these; Python before 3.13 still has the RFC 7231 phrases, which made the
# same 422 "Unprocessable Entity" in one place and "Unprocessable Content" in another.
_RFC9110_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    """The problem ``title`` of a status: its RFC 9110 reason phrase."""
    return _RFC9110_TITLES.get(status) or HTTPStatus(status).phrase


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """Build one problem-details response; the single place the body shape is defined."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or status_title(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if extra:
        body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 - registered for AppError only
    return problem_response(
        request, exc.status, exc.detail, title=exc.title, headers=exc.headers, extra=exc.extra
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    return problem_response(
        request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {})
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors) or "request"
    return problem_response(request, 422, f"Invalid input in: {fields}", extra={"errors": errors})


async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", error=type(exc).__name__, path=request.url.path)
    if isinstance(exc, PoolTimeout):
        # Every connection is busy (e.g. clients retrying after an outage): shed load at
        # once instead of queueing; a retry a second later usually finds one free.
        detail, retry_after = "The database is busy; retry shortly.", "1"
    elif _is_contention(exc):
        detail, retry_after = "The request collided with a concurrent one; retry it.", "1"
    else:
        what = "cache" if isinstance(exc, RedisConnectionError | RedisTimeoutError) else "database"
        detail, retry_after = f"The {what} is unavailable; retry later.", "5"
    return problem_response(request, 503, detail, headers={"Retry-After": retry_after})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return problem_response(request, 500, "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of the app as problem details."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_type in (
        RedisConnectionError,
        RedisTimeoutError,
        OperationalError,
        InterfaceError,
        ConnectionError,
        OSError,
        TimeoutError,
        PoolTimeout,
    ):
        app.add_exception_handler(exc_type, _dependency_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(Exception, _unexpected)


# SQLSTATEs of passing faults: connection exceptions (class 08), too many connections, the
# server shutting down or starting up (57P01-57P03), and the two a retry resolves
# (serialization failure, deadlock).
_UNAVAILABLE_STATES = ("08", "53300", "57P01", "57P02", "57P03")
_CONTENTION_STATES = ("40001", "40P01")
# asyncpg's errors of a connection that is gone (by name: no import of the driver here).
_ASYNCPG_CONNECTION_ERRORS = frozenset({"ConnectionDoesNotExistError", "CannotConnectNowError"})


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what SQLAlchemy wraps (``orig``) and the chain of causes under it."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return seen


def _sqlstate(exc: BaseException) -> str:
    for cause in _causes(exc):
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _is_contention(exc: BaseException) -> bool:
    return _sqlstate(exc) in _CONTENTION_STATES


def database_unavailable(exc: BaseException) -> bool:
    """Is ``exc`` a passing fault of the database (retry later), not a bug of ours?

    A lost, refused or timed-out connection, a server shutting down (``the database system
    is shutting down``, a backend terminated by an administrator), an exhausted pool, too
    many connections, a deadlock or serialization failure.
    """
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state.startswith(_UNAVAILABLE_STATES) or state in _CONTENTION_STATES:
        return True
    return any(
        isinstance(cause, ConnectionError | OSError | TimeoutError)
        or type(cause).__name__ in _ASYNCPG_CONNECTION_ERRORS
        for cause in _causes(exc)
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # asyncpg's errors arrive wrapped in DBAPIError: a passing fault is a 503, anything
    # else is our bug.
    assert isinstance(exc, DBAPIError)  # noqa: S101
    if database_unavailable(exc):
        return await _dependency_down(request, exc)
    return await _unexpected(request, exc)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A constraint the service did not check first (e.g. a concurrent duplicate): the
    # transaction was rolled back, nothing changed.
    log.info("integrity_error", path=request.url.path, error=str(exc).splitlines()[0][:200])
    return problem_response(request, 409, "The request conflicts with existing data.")
