"""The api gateway: routing, JWT check, rate limit, breakers, WebSocket proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from gateway.admission import Admitter, TokenVerifier
from gateway.health import breaker_details, upstream_check
from gateway.proxy import GatewayProxy
from gateway.settings import GatewaySettings, get_settings
from gateway.upstreams import UpstreamRegistry
from shared.app import create_service_app


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    registry = UpstreamRegistry(settings)
    verifier = TokenVerifier(settings.jwt_secret, settings.jwt_algorithm)
    proxies: list[GatewayProxy] = []

    @asynccontextmanager
    async def gateway_component(app: FastAPI) -> AsyncIterator[None]:
        await registry.open()
        admitter = Admitter(
            settings.redis_url,
            limit=settings.rate_limit_per_minute,
            enabled=settings.rate_limit_enabled,
        )
        for proxy in proxies:
            proxy.admitter = admitter
        app.state.upstreams = registry
        if settings.health_include_upstreams:
            for name, upstream in registry.by_name.items():
                app.state.health_checks[name] = upstream_check(
                    upstream, settings.health_check_timeout
                )
        app.state.health_details = breaker_details(registry)
        try:
            yield
        finally:
            await admitter.close()
            await registry.close()

    app = create_service_app(
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
    )

    def build_proxy(inner: object) -> GatewayProxy:
        proxy = GatewayProxy(
            inner,  # type: ignore[arg-type]
            registry=registry,
            verifier=verifier,
            buffer_request_body_bytes=settings.buffer_request_body_bytes,
        )
        proxies.append(proxy)
        return proxy

    # Innermost of the user middleware: inside the request log (one line per request,
    # X-Request-ID) and CORS, in front of FastAPI's routing, which never sees proxied paths.
    app.user_middleware.append(Middleware(build_proxy))
    return app
