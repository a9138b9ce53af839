"""The one HTTP client for calls from one TradeBot service to another.

::

    async with ServiceClient(
        "user", settings.user_service_urls, caller="trading", internal_token=token
    ) as users:
        body = await users.get(f"/user/internal/users/{user_id}")

**Replicas.** ``base_urls`` lists the replicas of one service (comma separated, as the
settings hold them, or a list). A call starts at the replica that answered the last call and
moves on to the next when one refuses the connection, times out or answers 5xx; the next
call starts where this one succeeded, so a dead replica costs one failed attempt, not one
per call.

**Breakers.** Each replica has its own :class:`~shared.breaker.CircuitBreaker`, named
``caller->service@host:port`` so the ``circuit_breaker_state`` gauge says which replica of
which dependency is open. A replica whose breaker is open is skipped without a request.

**Retries.** Only reads (GET, HEAD) are retried: when a whole pass over the replicas failed,
tenacity waits (exponential back-off) and makes another pass, ``read_attempts`` passes at
most. Any other method is never sent twice: it moves to another replica only when it surely
did not reach the first (the connection was refused or could not be made in time); a read
timeout, a dropped connection or a 5xx, after which it may have been applied, ends the call.

**Errors.** A 1xx-3xx answer is returned. An error answer (problem details, or FastAPI's
``{"detail": ...}``) becomes an error of :mod:`shared.errors` carrying the upstream
``detail``::

    400, 422           ValidationFailed
    401                ServiceUnavailable   our credentials were refused: a wrong internal
                                        token is a fault of this deployment, never the
                                        end user's login (logged as an error)
    403                Forbidden
    404                NotFound
    409                Conflict
    429                RateLimited          with the upstream's Retry-After
    other 4xx          BadRequest
    5xx, transport     ServiceUnavailable   names the service, with Retry-After; also when
    errors, breakers                        every replica is down or its breaker open
    open

A call's ``errors`` gives a status the caller's own meaning (a 404 on an exchange key is
Forbidden to the trading engine): it maps the status to a function of the upstream detail.
Every call carries ``X-Internal-Token`` when the client has one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from shared.breaker import BreakerState, CircuitBreaker
from shared.errors import (
    AppError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.settings import split_urls

__all__ = ["ServiceClient", "StatusErrors"]

StatusErrors = Mapping[int, Callable[[str], AppError]]
"""A caller's own error per status, built from the upstream detail."""

_DEFAULT_ERRORS: dict[int, Callable[[str], AppError]] = {
    400: ValidationFailed,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}
_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name, not a secret
# A service keeps an idle keep-alive connection open this long (`tradebot serve`), and
# every caller (this client, the gateway's pool) drops one idle for IDLE_EXPIRY_S, well
# before: a request written on a connection the server is closing fails with no answer,
# and a non-idempotent one cannot be sent again.
SERVER_KEEP_ALIVE_S = 30
IDLE_EXPIRY_S = 10.0
_IDEMPOTENT = frozenset({"GET", "HEAD"})
# Raised before any byte of the request left this process: safe to send elsewhere.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

log = structlog.get_logger("service_client")


@dataclass(frozen=True)
class _Replica:
    url: str
    breaker: CircuitBreaker


class ServiceClient:
    """Calls to the replicas of one service, on one pooled ``httpx.AsyncClient``."""

    def __init__(
        self,
        service: str,
        base_urls: str | Sequence[str],
        *,
        caller: str,
        internal_token: str | None = None,
        timeout_s: float = 5.0,
        read_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        breaker_failures: int = 5,
        breaker_reset_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        urls = split_urls(base_urls) if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError(f"no URL configured for the {service} service")
        self.service = service
        self._replicas = [
            _Replica(
                url,
                CircuitBreaker(
                    f"{caller}->{service}@{url.partition('://')[2] or url}",
                    failure_threshold=breaker_failures,
                    reset_timeout=breaker_reset_s,
                ),
            )
            for url in (u.rstrip("/") for u in urls)
        ]
        self._preferred = 0
        self._read_attempts = max(1, read_attempts)
        self._backoff_s = retry_backoff_s
        self._http = httpx.AsyncClient(
            timeout=timeout_s,
            headers={_TOKEN_HEADER: internal_token} if internal_token else None,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=IDLE_EXPIRY_S),
            trust_env=False,  # calls between services never go through an HTTP proxy
        )

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Each replica's breaker, by base URL."""
        return {replica.url: replica.breaker for replica in self._replicas}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        errors: StatusErrors | None = None,
    ) -> Any:
        """``GET path`` on a replica; the decoded JSON body."""
        response = await self.request("GET", path, params=params, errors=errors)
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceUnavailable(
                self.service,
                f"The {self.service} service answered {response.status_code} without JSON.",
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        errors: StatusErrors | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send ``method path`` to a replica (see the module docstring for which, how
        often, and the errors raised); the answer when it is not an error. ``timeout_s``
        overrides the client's timeout for this call (a long streamed answer)."""
        method = method.upper()
        if method not in _IDEMPOTENT or self._read_attempts == 1:
            return self._checked(await self._pass(method, path, params, json, timeout_s), errors)
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._read_attempts),
            wait=wait_exponential(
                multiplier=self._backoff_s, min=self._backoff_s, max=5 * self._backoff_s
            ),
            # A pass that found every breaker open tried nothing: waiting will not help.
            retry=retry_if_exception(
                lambda exc: isinstance(exc, ServiceUnavailable) and not exc.circuit_open
            ),
            reraise=True,
        ):
            with attempt:
                response = await self._pass(method, path, params, json, timeout_s)
        return self._checked(response, errors)  # an answer, even an error, is not retried

    async def _pass(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """One try over the replicas, from the preferred one on."""
        may_resend = method in _IDEMPOTENT
        count = len(self._replicas)
        start = self._preferred
        failures: list[str] = []
        retry_hints: list[int] = []
        tried = False
        for step in range(count):
            index = (start + step) % count
            replica = self._replicas[index]
            probing = replica.breaker.state is BreakerState.HALF_OPEN
            if not replica.breaker.allow():
                failures.append(f"replica {index + 1}: circuit open")
                retry_hints.append(math.ceil(replica.breaker.retry_after))
                continue
            tried = True
            try:
                response = await self._http.request(
                    method,
                    replica.url + path,
                    params=params,
                    json=json,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s,
                )
            except httpx.TransportError as exc:
                self._failed(index, repr(exc))
                failures.append(f"replica {index + 1}: {type(exc).__name__}")
                if may_resend or isinstance(exc, _NOT_SENT):
                    continue
                raise ServiceUnavailable(
                    self.service,
                    f"The {self.service} service did not answer ({type(exc).__name__}); "
                    "the request may have been applied and is not repeated.",
                ) from exc
            except BaseException:
                if probing:  # a cancelled probe must not leave the breaker half-open for good
                    replica.breaker.record_failure()
                raise
            if response.status_code >= 500:
                detail = _upstream_detail(response, self.service)
                self._failed(index, f"{response.status_code} {detail}")
                failures.append(f"replica {index + 1}: {response.status_code} {detail}")
                hint = _retry_after(response)
                if hint is not None:
                    retry_hints.append(hint)
                if may_resend:
                    continue
                raise ServiceUnavailable(
                    self.service,
                    f"The {self.service} service failed ({response.status_code}: {detail}); "
                    "the request may have been applied and is not repeated.",
                    retry_after=hint or 5,
                )
            replica.breaker.record_success()
            self._preferred = index
            return response
        raise ServiceUnavailable(
            self.service,
            f"The {self.service} service is unavailable ({'; '.join(failures)}).",
            retry_after=max(1, min(retry_hints)) if retry_hints else 5,
            circuit_open=not tried,
        )

    def _failed(self, index: int, error: str) -> None:
        replica = self._replicas[index]
        replica.breaker.record_failure()
        if self._preferred == index:  # the next call starts at the next replica
            self._preferred = (index + 1) % len(self._replicas)
        log.warning("service_replica_failed", service=self.service, url=replica.url, error=error)

    def _checked(self, response: httpx.Response, errors: StatusErrors | None) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        detail = _upstream_detail(response, self.service)
        make = (errors or {}).get(status) or _DEFAULT_ERRORS.get(status)
        if make is not None:
            raise make(detail)
        if status == 401:
            # Passed on as a 401 it would send the end user to log in again, for nothing.
            log.error("service_credentials_refused", service=self.service, detail=detail)
            raise ServiceUnavailable(
                self.service, f"The {self.service} service refused this service's credentials."
            )
        if status == 429:
            raise RateLimited(detail, retry_after=_retry_after(response) or 1)
        raise BadRequest(detail)


def _upstream_detail(response: httpx.Response, service: str) -> str:
    """The ``detail`` (else ``title``) of an error answer, else a line naming the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        found = body.get("detail") or body.get("title")
        if found:
            return str(found)
    return f"The {service} service answered {response.status_code}."


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return max(1, int(value)) if value.isdigit() else None
