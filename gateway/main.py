"""The api gateway: routing, JWT check, rate limit, breakers, WebSocket proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from gateway.admission import Admitter, TokenVerifier
from gateway.dashboard import DEFAULT_DIST, DashboardFiles
from gateway.health import breaker_details, upstream_check
from gateway.proxy import GatewayProxy, GatewayRuntime
from gateway.recovery import watch_open_breakers
from gateway.settings import GatewaySettings, get_settings
from gateway.upstreams import UpstreamRegistry
from shared.app import create_service_app
from shared.cancellation import cancel_and_wait
from shared.forwarding import trusted_proxies
from shared.heap import freeze_long_lived, tune_collections


class GatewayApp(FastAPI):
    """FastAPI with the proxy in front: a request for a proxied prefix goes straight to
    the proxy and skips FastAPI's per-request work; /health, /metrics, /docs and unknown
    paths go through FastAPI as usual."""

    proxy: GatewayProxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.proxy.upstream_for(scope)
        if upstream is None:
            await super().__call__(scope, receive, send)
        else:
            await self.proxy.handle(scope, receive, send, upstream)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = UpstreamRegistry(settings)
    verifier = TokenVerifier(settings.jwt_secret, settings.jwt_algorithm)
    runtime = GatewayRuntime()

    @asynccontextmanager
    async def gateway_component(app: FastAPI) -> AsyncIterator[None]:
        await registry.open()
        admitter = Admitter(
            settings.redis_url,
            limit=settings.rate_limit_per_minute,
            enabled=settings.rate_limit_enabled,
        )
        runtime.admitter = admitter
        app.state.upstreams = registry
        if settings.health_include_upstreams:
            for name, upstream in registry.by_name.items():
                app.state.health_checks[name] = upstream_check(
                    upstream, settings.health_check_timeout
                )
        app.state.health_details = breaker_details(registry)
        recovery = asyncio.create_task(
            watch_open_breakers(
                registry,
                interval=settings.breaker_probe_interval_seconds,
                limit_s=settings.health_check_timeout,
            )
        )
        if settings.tunes_gc:
            freeze_long_lived(full=True)
            tune_collections()
        try:
            yield
        finally:
            await cancel_and_wait([recovery])
            await admitter.close()
            await registry.close()

    app = cast(
        GatewayApp,
        create_service_app(
            settings,
            title="TradeBot API gateway",
            description=(
                "Routes /market, /user, /trading, /analysis and /notifications to their "
                "services with JWT check, rate limit, circuit breakers and WebSocket proxying."
            ),
            routers=[],
            components=[gateway_component],
            use_database=False,
            cors_origins=settings.cors_origin_list,
            app_class=GatewayApp,
        ),
    )
    dashboard_dir = Path(settings.dashboard_dir) if settings.dashboard_dir else DEFAULT_DIST
    app.router.routes.extend(DashboardFiles(dashboard_dir).routes())
    app.proxy = GatewayProxy(
        registry=registry,
        verifier=verifier,
        runtime=runtime,
        buffer_request_body_bytes=settings.buffer_request_body_bytes,
        service=settings.service_name,
        cors_origins=settings.cors_origin_list,
        trusted=trusted_proxies(settings.trusted_proxies),
    )
    return app
