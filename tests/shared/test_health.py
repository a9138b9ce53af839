"""Every app's /health: 200 with everything up, 503 naming the dependency that is down."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from tests.servers import app_client

DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"

SERVICES = {
    # service: (package, settings class, has a database)
    "gateway": ("gateway", "GatewaySettings", False),
    "market": ("market_service", "MarketSettings", True),
    "user": ("user_service", "UserSettings", True),
    "trading": ("trading_engine", "TradingSettings", True),
    "analysis": ("analysis_service", "AnalysisSettings", True),
    "notification": ("notification_service", "NotificationSettings", True),
}


def make_app(service: str, **overrides: str):
    package, settings_cls, _ = SERVICES[service]
    settings_mod = importlib.import_module(f"{package}.settings")
    main = importlib.import_module(f"{package}.main")
    settings = getattr(settings_mod, settings_cls)(**overrides)
    return main.create_app(settings)


def upstream_overrides(service: str) -> dict[str, str]:
    # The gateway's health includes its upstreams; point them at nothing for these checks
    # so only the dependency under test decides (the gateway's own tests cover upstreams).
    return {"health_include_upstreams": "false"} if service == "gateway" else {}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_health_is_200_when_all_dependencies_are_up(service: str) -> None:
    async with app_client(make_app(service, **upstream_overrides(service))) as client:
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "healthy"
    assert body["services"]["redis"] == "up"
    if SERVICES[service][2]:
        assert body["services"]["database"] == "up"
    assert "timestamp" in body


@pytest.mark.parametrize("service", list(SERVICES))
async def test_health_is_503_naming_redis_when_redis_is_down(service: str) -> None:
    app = make_app(service, redis_url=DEAD_REDIS, **upstream_overrides(service))
    async with app_client(app) as client:
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"] == "down"


@pytest.mark.parametrize("service", list(SERVICES))
async def test_a_hung_dependency_is_cut_off_by_the_check_timeout_and_reported_down(
    service: str,
) -> None:
    # The check timeout (settings.health_check_timeout) is what ends the hung check.
    app = make_app(service, **upstream_overrides(service))
    cut_off = asyncio.Event()

    async def never_answers() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cut_off.set()  # cancelled by the check's timeout: nothing else ends this wait

    async with app_client(app) as client:
        # Redis that accepted the connection and never answers PING.
        app.state.health_checks["redis"] = never_answers
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["services"]["redis"] == "down"
    assert cut_off.is_set()
    if SERVICES[service][2]:
        assert body["services"]["database"] == "up"  # the other checks ran alongside


@pytest.mark.parametrize("service", [s for s, v in SERVICES.items() if v[2]])
async def test_health_is_503_naming_the_database_when_it_is_down(service: str) -> None:
    app = make_app(service, database_url=DEAD_DATABASE)
    async with app_client(app) as client:
        response = await client.get("/health")
    body = response.json()
    assert response.status_code == 503
    assert body["services"]["database"] == "down"
    assert body["services"]["redis"] == "up"


async def test_readiness_checks_the_stores_only_so_an_exchange_down_keeps_replicas_in() -> None:
    app = make_app("market")

    async def exchange_down() -> None:
        raise RuntimeError("exchange down: binance")

    async with app_client(app) as client:
        app.state.health_checks["exchange"] = exchange_down
        health = await client.get("/health")
        ready = await client.get("/health/ready")
    assert health.status_code == 503
    assert health.json()["services"]["exchange"] == "down"
    assert ready.status_code == 200
    assert ready.json()["services"] == {"database": "up", "redis": "up"}


async def test_readiness_fails_when_the_services_own_store_is_down() -> None:
    async with app_client(make_app("user", redis_url=DEAD_REDIS)) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["services"]["redis"] == "down"


@pytest.mark.parametrize("service", ["gateway", "market"])
async def test_liveness_answers_while_a_dependency_is_down_and_scrapes_report_it(
    service: str,
) -> None:
    app = make_app(service, redis_url=DEAD_REDIS, **upstream_overrides(service))
    async with app_client(app) as client:
        live = await client.get("/health/live")
        metrics = await client.get("/metrics")
    assert live.status_code == 200
    assert live.json() == {"status": "alive"}
    # Each scrape runs the checks: the alert rules read dependency_up (deploy/prometheus).
    assert 'dependency_up{dependency="redis"} 0.0' in metrics.text
    if SERVICES[service][2]:
        assert 'dependency_up{dependency="database"} 1.0' in metrics.text


@pytest.mark.parametrize("service", list(SERVICES))
async def test_metrics_and_docs_are_served(service: str) -> None:
    async with app_client(make_app(service, **upstream_overrides(service))) as client:
        await client.get("/health")
        metrics = await client.get("/metrics")
        docs = await client.get("/docs")
        openapi = await client.get("/openapi.json")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text
    assert docs.status_code == 200
    assert openapi.json()["info"]["title"].startswith("TradeBot")


async def test_unknown_route_is_a_problem_document_with_a_request_id() -> None:
    async with app_client(make_app("market")) as client:
        response = await client.get("/nowhere", headers={"X-Request-ID": "abc123"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc123"
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert body["instance"] == "/nowhere"
