"""``GET /health``, ``GET /health/ready``, ``GET /health/live`` and ``GET /metrics``
(docs/api.md, health and metrics).

Each check runs concurrently under a timeout, so a hung dependency reports ``down`` well
under two seconds instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from shared.strict_query import StrictQueryRoute

HealthCheck = Callable[[], Awaitable[Any]]

# What a replica cannot serve anything without: its own stores. An exchange or another
# service being down fails only the routes that need it (503), so it does not make the
# replica unready: every replica would leave its Service at once.
READINESS_CHECKS = ("database", "redis")

# Each health check's last result (database, redis, the market's exchanges, the gateway's
# upstreams): refreshed by every /health and every scrape of /metrics.
DEPENDENCY_UP = Gauge(
    "dependency_up", "1 when the last check of a dependency passed, else 0", ["dependency"]
)


async def run_check(check: HealthCheck, limit_s: float) -> bool:
    try:
        await asyncio.wait_for(check(), limit_s)
    except Exception:
        return False
    return True


async def health_report(
    checks: dict[str, HealthCheck], limit_s: float
) -> tuple[int, dict[str, Any]]:
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n], limit_s) for n in names))
    services = {name: "up" if ok else "down" for name, ok in zip(names, results, strict=True)}
    for name, ok in zip(names, results, strict=True):
        DEPENDENCY_UP.labels(name).set(1 if ok else 0)
    healthy = all(results)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(),
        "services": services,
    }
    return (200 if healthy else 503), body


def ops_router() -> APIRouter:
    """`/health` from the checks on ``app.state.health_checks``, `/health/ready` from its
    stores' checks, `/health/live`, and `/metrics`."""
    router = APIRouter(route_class=StrictQueryRoute, tags=["operations"])

    @router.get("/health", summary="Health of this service and its dependencies")
    async def health(request: Request) -> JSONResponse:
        checks: dict[str, HealthCheck] = request.app.state.health_checks
        status, body = await health_report(checks, request.app.state.settings.health_check_timeout)
        extra = getattr(request.app.state, "health_details", None)
        if extra is not None:
            body.update(await extra())
        return JSONResponse(body, status_code=status)

    @router.get("/health/ready", summary="Readiness: this service's database and Redis")
    async def ready(request: Request) -> JSONResponse:
        checks: dict[str, HealthCheck] = request.app.state.health_checks
        own = {name: check for name, check in checks.items() if name in READINESS_CHECKS}
        status, body = await health_report(own, request.app.state.settings.health_check_timeout)
        return JSONResponse(body, status_code=status)

    @router.get("/health/live", summary="Liveness: the process answers, nothing else is checked")
    async def live() -> JSONResponse:
        # For a liveness probe: a database or Redis outage must not get every replica
        # restarted (readiness takes them out of service instead).
        return JSONResponse({"status": "alive"})

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # The checks run at each scrape too, so `dependency_up` is as fresh as the scrape
        # whether or not anything probes /health.
        checks: dict[str, HealthCheck] = getattr(request.app.state, "health_checks", {})
        await health_report(checks, request.app.state.settings.health_check_timeout)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
