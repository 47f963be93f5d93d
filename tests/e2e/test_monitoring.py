"""The monitoring profile, checked without Docker: docker-compose.yml's ``monitoring``
services mount files that exist, Prometheus scrapes the API where it listens, and every
metric (and label) that the alert rules and the Grafana dashboard use is one that
``GET /metrics`` really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fixtures import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
ALERTS = yaml.safe_load((ROOT / "docs/monitoring/alerts.yml").read_text())
DASHBOARD = json.loads((ROOT / "docs/monitoring/grafana-dashboard.json").read_text())
DATASOURCES = yaml.safe_load(
    (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
)
PROVIDERS = yaml.safe_load(
    (ROOT / "deploy/grafana/provisioning/dashboards/deltaflow.yml").read_text()
)
SELECTOR = re.compile(r"\b(deltaflow_[a-z_]+)\b(\{[^}]*\})?")
RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
TARGETS = [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = ROOT / source
    return out


def test_the_monitoring_profile_is_prometheus_and_grafana_with_files_that_exist():
    profiled = {name for name, s in SERVICES.items() if "monitoring" in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    for name in profiled:
        for host in mounts(name).values():
            assert host.exists(), host
    assert mounts("prometheus")["/etc/prometheus/prometheus.yml"] == ROOT / "deploy/prometheus.yml"
    for rule_file in PROMETHEUS["rule_files"]:
        assert rule_file in mounts("prometheus")
    dashboards = PROVIDERS["providers"][0]["options"]["path"]
    assert any(target.startswith(dashboards + "/") for target in mounts("grafana"))


def test_prometheus_scrapes_the_api_where_it_listens():
    (job,) = PROMETHEUS["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    command = SERVICES[host]["command"]
    assert command[command.index("--port") + 1] == port
    assert port in SERVICES[host]["expose"]


def test_the_issues_alerts_exist_and_are_complete():
    names = {rule["alert"] for rule in RULES}
    assert {"DeltaflowJobsFailing", "DeltaflowQueueStuck", "DeltaflowNoWorkers"} <= names
    for rule in RULES:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]


def test_the_dashboard_uses_the_provisioned_datasource_and_a_clean_grid():
    (source,) = DATASOURCES["datasources"]
    assert DASHBOARD["uid"]
    cells = set()
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


@pytest.fixture
def exposed(client, auth) -> dict[str, set[str]]:
    """Every sample name /metrics exposes, with the label names it carries."""
    client.get("/api/v1/jobs", headers=auth)  # so the HTTP families have samples
    text = client.get("/metrics").get_data(as_text=True)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.mark.parametrize("expr", [r["expr"] for r in RULES] + TARGETS)
def test_every_expression_uses_metrics_and_labels_that_exist(exposed, expr):
    used = SELECTOR.findall(expr)
    assert used or "up{" in expr, expr
    for name, selector in used:
        assert name in exposed, f"{name} is not exposed by /metrics"
        for label in re.findall(r"(\w+)\s*(?:=~|!=|=)", selector):
            assert label in exposed[name], f"{name} has no label {label}"


def promtool() -> str:
    """Debian's promtool, unpacked into the venv by ``make promtool`` (or on PATH)."""
    found = shutil.which("promtool") or str(ROOT / ".venv/promtool/usr/bin/promtool")
    if not Path(found).is_file():
        unavailable("promtool: run `make promtool` (make test does)")
    return found


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_config_and_the_rules_and_their_unit_tests(tmp_path):
    tool = promtool()
    config = PROMETHEUS | {"rule_files": [str(ROOT / "docs/monitoring/alerts.yml")]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run(tool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert f"SUCCESS: {len(RULES)} rules found" in run(
        tool, "check", "rules", str(ROOT / "docs/monitoring/alerts.yml")
    )
    # Each alert fires (and stays quiet) as intended on made-up series.
    assert "SUCCESS" in run(tool, "test", "rules", str(ROOT / "docs/monitoring/alerts_test.yml"))


def test_promtool_parses_every_dashboard_query(tmp_path):
    """The dashboard's queries as recording rules: promtool parses each PromQL expression."""
    rules = [{"record": f"deltaflow:panel_{i}", "expr": expr} for i, expr in enumerate(TARGETS)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(promtool(), "check", "rules", str(path))
