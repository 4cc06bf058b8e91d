"""The monitoring files (issue 22), checked statically as tests/unit/test_compose.py does:
a Prometheus service under the compose profile ``monitoring`` whose scrape config reaches
the API and the writer's and sweeper's METRICS_PORT, a Grafana service provisioned with the
dashboard, and a dashboard that is valid JSON with queries on onsale metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "ops" / "prometheus" / "prometheus.yml"
DASHBOARD = REPO / "ops" / "grafana" / "onsale.json"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    return found


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (relative to the repo)."""
    out = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("./"):
            out[container] = host
    return out


def test_prometheus_runs_under_the_monitoring_profile(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["image"].startswith("prom/prometheus:v")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    mounts = _mounts(prometheus)
    assert (REPO / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_CONFIG
    assert all(p.startswith("127.0.0.1:") for p in prometheus["ports"])  # loopback only
    grafana = services["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    mounts = _mounts(grafana)
    assert (REPO / mounts["/var/lib/grafana/dashboards/onsale.json"]).resolve() == DASHBOARD
    assert (REPO / mounts["/etc/grafana/provisioning"] / "dashboards").is_dir()
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])
    for name in ("api", "writer", "sweeper", "redis"):  # the stack itself has no profile
        assert "profiles" not in services[name], name


def test_the_scrape_config_reaches_every_process_that_counts(services: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    api_port = services["api"]["environment"]["PORT"]
    assert f"api:{api_port}" in targets
    for name in ("writer", "sweeper"):
        port = services[name]["environment"]["METRICS_PORT"]
        assert f"{name}:{port}" in targets, name
        assert services[name]["environment"]["APP_ENV"] == "production"  # the anchor kept
    api_job = next(j for j in config["scrape_configs"] if f"api:{api_port}" in str(j))
    assert api_job.get("metrics_path", "/metrics") == "/metrics"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_scrape_config() -> None:
    done = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, timeout=30
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_the_dashboard_is_valid_json_querying_onsale_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "onsale"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    names: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            names |= set(re.findall(r"\bonsale_[a-z_]+", target["expr"]))
    # The series, all on the dashboard (their presence in a real scrape:
    # tests/integration/test_prometheus.py).
    for wanted in (
        "onsale_holds_total",
        "onsale_hold_duration_seconds_bucket",
        "onsale_confirms_total",
        "onsale_cancels_total",
        "onsale_holds_released_total",
        "onsale_rate_limited_total",
        "onsale_writer_lag_entries",
        "onsale_writer_dead_letters",
        "onsale_writer_dead_lettered_total",
    ):
        assert wanted in names, wanted
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "DS_PROMETHEUS" in variables
