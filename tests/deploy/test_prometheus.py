"""deploy/prometheus and deploy/grafana: the rules pass promtool (Debian's `prometheus`
package; scripts/install-promtool) and its unit tests, the scrape configuration gives the
labels the rules group by, and the dashboard reads Prometheus through its variables. That
every series they read is exported is tests/deploy/test_live_metrics.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.promql import DASHBOARD, DEPLOY, dashboard_expressions, recorded_names

PROMETHEUS = DEPLOY / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool") or str(Path(sys.executable).parent / "promtool")
    assert Path(tool).exists(), "promtool is missing: ./scripts/bootstrap installs it"
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_fire_on_the_series_the_services_export_in_promtools_unit_tests() -> None:
    result = promtool("test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_configuration_loads_the_rules_and_labels_each_target() -> None:
    # Debian's promtool is built without Kubernetes discovery, so `promtool check config`
    # cannot read this file; its shape is checked here instead.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["tradebot"]}}]
    targets = {relabel.get("target_label") for relabel in job["relabel_configs"]}
    assert {"app", "namespace", "pod", "__address__", "__metrics_path__"} <= targets


def test_the_dashboard_reads_prometheus_through_its_variables_and_the_recorded_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(graphs) >= 20
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"], panel["title"]
    expressions = " ".join(dashboard_expressions())
    recorded = {name for name in recorded_names() if name in expressions}
    assert len(recorded) >= 5  # the dashboard reuses the rules' series
