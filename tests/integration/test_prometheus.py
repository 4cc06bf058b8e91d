"""/metrics by the book (issue 22): counters named ``_total`` for holds by result, confirms,
cancels, expiries by path, dead letters and rate-limit refusals; a hold-latency histogram;
values summed over ``onsale serve --workers 2`` (prometheus_client multiprocess mode); the
writer and the sweeper on their own METRICS_PORT; every scrape passes ``promtool check
metrics`` (when installed) and a strict parse; the Grafana dashboard names only metrics a
real scrape has."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from engine.redis_server import free_port
from tests.integration.conftest import REPO, ApiServer, create_event, register, unique_email

DASHBOARD = REPO / "ops" / "grafana" / "onsale.json"
COUNTERS = {
    "onsale_holds",
    "onsale_confirms",
    "onsale_cancels",
    "onsale_rate_limited",
    "onsale_holds_released",
    "onsale_expiry_sweeps",
    "onsale_writer_dead_lettered",
    "onsale_writer_orders_written",
}


# -- checking an exposition ---------------------------------------------------------------


def strict_parse(text: str) -> dict[str, Metric]:
    """The families of a Prometheus text exposition, checked the way promtool's linter
    does: one HELP and TYPE per family, counters named ``_total``, finite counter values,
    histogram buckets cumulative up to ``+Inf`` == ``_count``; and, when promtool is
    installed, ``promtool check metrics`` itself."""
    helps = re.findall(r"^# HELP (\S+)", text, re.M)
    types = re.findall(r"^# TYPE (\S+) (\S+)", text, re.M)
    assert len(helps) == len(set(helps)), "a family's HELP twice"
    assert len(types) == len({n for n, _ in types}), "a family's TYPE twice"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(families) == len(types)
    for name, kind in types:
        if kind == "counter":
            assert name.endswith("_total"), name
    for family in families.values():
        assert family.documentation, f"{family.name}: no help text"
        if family.type == "counter":
            for s in family.samples:
                assert s.name.endswith(("_total", "_created")), s.name
                assert math.isfinite(s.value) and s.value >= 0, s
        if family.type == "histogram":
            _check_histogram(family)
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run(
            [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
        )
        assert done.returncode == 0, (done.stdout + done.stderr).decode()
    return families


def _check_histogram(family: Metric) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for s in family.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name.endswith("_bucket"):
            series.setdefault(rest, []).append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            counts[rest] = s.value
    for labels, buckets in series.items():
        buckets.sort()
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{family.name}{labels}: buckets not cumulative"
        assert buckets[-1][0] == math.inf and buckets[-1][1] == counts[labels]


def value(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The sample ``name`` (``_total`` included for counters) with these labels, 0 if none."""
    base = name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    family = families.get(base) or families.get(name)
    if family is None:
        return 0.0
    return sum(
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def scrape(url: str) -> dict[str, Metric]:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    kind, *params = (p.strip() for p in r.headers["content-type"].split(";"))
    assert kind == "text/plain" and params.count("charset=utf-8") == 1, r.headers
    assert any(p.startswith("version=") for p in params)
    return strict_parse(r.text)


def until(
    url: str, ok: Callable[[dict[str, Metric]], bool], timeout: float = 20
) -> dict[str, Metric]:
    deadline = time.monotonic() + timeout
    while True:
        families = scrape(url)
        if ok(families) or time.monotonic() > deadline:
            return families
        time.sleep(0.2)


def _hold(api: ApiServer, token: str, event: dict[str, Any], qty: int = 1) -> httpx.Response:
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": qty}],
    }
    # A fresh connection each time: the kernel hands it to either worker.
    return httpx.post(
        f"{api.url}/api/orders",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=30,
    )


# -- processes ------------------------------------------------------------------------------


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_http(self, url: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} never answered:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def two_workers(api_factory: Callable[..., ApiServer]) -> ApiServer:
    # The writer and the sweeper run apart (the compose layout), on their own METRICS_PORT.
    return api_factory(workers=2, RUN_WRITER="false", RUN_EXPIRY="false")


@pytest.fixture(scope="module")
def helpers(
    two_workers: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """``onsale writer`` and ``onsale sweeper`` on the same Redis and store, each serving
    /metrics on its METRICS_PORT; their URLs."""
    tmp = tmp_path_factory.mktemp("helpers")
    started: list[Process] = []
    urls: dict[str, str] = {}
    for command in ("writer", "sweeper"):
        port = free_port()
        env = {**two_workers.env, "METRICS_PORT": str(port)}
        process = Process([command], env, tmp / f"{command}.log")
        started.append(process)
        urls[command] = f"http://127.0.0.1:{port}/metrics"
        process.wait_http(urls[command])
    yield urls
    for process in started:
        process.stop()


# -- tests ----------------------------------------------------------------------------------


def test_holds_through_both_workers_are_all_counted_in_one_scrape(
    two_workers: ApiServer,
) -> None:
    api = two_workers
    metrics = f"{api.url}/metrics"
    directory = api.data_dir / "prometheus" / api.env["PORT"]  # one per server (its PORT)
    assert directory.is_dir() and list(directory.glob("*.db")), "not in multiprocess mode"
    organizer, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    event = create_event(api, organizer, [("General", 10, 1000)])
    token, _ = register(api, unique_email("buyer"))
    before = scrape(metrics)
    n = 30
    for _ in range(n):
        assert _hold(api, token, event).status_code == 201
    small = create_event(api, organizer, [("Tiny", 10, 1)])
    assert _hold(api, token, small, 2).status_code == 409  # sold out

    def counted(f: dict[str, Metric]) -> bool:
        got = value(f, "onsale_holds_total", result="created")
        return got - value(before, "onsale_holds_total", result="created") >= n

    families = until(metrics, counted)
    created = value(families, "onsale_holds_total", result="created")
    assert created - value(before, "onsale_holds_total", result="created") == n
    assert value(families, "onsale_holds_total", result="sold_out") >= 1
    hist = families["onsale_hold_duration_seconds"]
    assert hist.type == "histogram"
    assert value(families, "onsale_hold_duration_seconds_count") >= n + 1
    # Each worker's file: both workers answered some of the n holds (30 fresh connections).
    pids = {p.stem.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}
    assert len(pids) >= 2, pids
    # The HTTP series (api/http_metrics.py) are summed over the workers too.
    requests = sum(
        s.value
        for s in families["onsale_requests"].samples
        if s.name == "onsale_requests_total" and s.labels["path"] == "/api/orders"
    )
    assert requests >= n + 1
    for name in ("onsale_holds", "onsale_confirms", "onsale_cancels", "onsale_rate_limited"):
        assert families[name].type == "counter", name


def test_confirms_and_cancels_are_counted_once(two_workers: ApiServer) -> None:
    api = two_workers
    metrics = f"{api.url}/metrics"
    organizer, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    event = create_event(api, organizer, [("General", 10, 100)])
    token, _ = register(api, unique_email("buyer"))
    before = scrape(metrics)
    first, second = (_hold(api, token, event).json()["id"] for _ in range(2))
    auth = {"Authorization": f"Bearer {token}"}
    pay = {"metodoPago": "card", "transactionId": "tx-metrics"}
    for _ in range(2):  # a retried confirm counts once
        r = httpx.put(f"{api.url}/api/orders/{first}/confirm", json=pay, headers=auth)
        assert r.status_code == 200, r.text
    r = httpx.put(f"{api.url}/api/orders/{second}/cancel", headers=auth)
    assert r.status_code == 200, r.text

    def moved(f: dict[str, Metric]) -> bool:
        return value(f, "onsale_cancels_total") > value(before, "onsale_cancels_total")

    families = until(metrics, moved)
    assert value(families, "onsale_confirms_total") - value(before, "onsale_confirms_total") == 1
    assert value(families, "onsale_cancels_total") - value(before, "onsale_cancels_total") == 1


def test_writer_and_sweeper_serve_their_own_metrics(
    two_workers: ApiServer, helpers: dict[str, str]
) -> None:
    api = two_workers
    organizer, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    event = create_event(api, organizer, [("General", 10, 100)])
    token, _ = register(api, unique_email("buyer"))
    order = _hold(api, token, event).json()["id"]
    pay = {"metodoPago": "card", "transactionId": "tx-writer"}
    r = httpx.put(
        f"{api.url}/api/orders/{order}/confirm",
        json=pay,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text

    writer = until(helpers["writer"], lambda f: value(f, "onsale_writer_orders_written_total") > 0)
    assert value(writer, "onsale_writer_orders_written_total") > 0
    assert value(writer, "onsale_writer_entries_read_total") > 0
    assert writer["onsale_writer_dead_lettered"].type == "counter"
    assert writer["onsale_writer_lag_entries"].type == "gauge"
    assert writer["onsale_writer_dead_letters"].type == "gauge"
    assert "onsale_writer_oldest_age_seconds" in writer
    assert "process_cpu_seconds" in writer  # a process of its own, its own collectors

    sweeper = until(helpers["sweeper"], lambda f: value(f, "onsale_expiry_sweeps_total") > 0)
    assert value(sweeper, "onsale_expiry_sweeps_total") > 0
    assert sweeper["onsale_holds_released"].type == "counter"
    paths = {s.labels["path"] for s in sweeper["onsale_holds_released"].samples}
    assert paths == {"listener", "sweeper"}


def test_a_rate_limited_hold_is_counted_by_scope_and_result(
    api_factory: Callable[..., ApiServer],
) -> None:
    api = api_factory(RATE_LIMIT_PER_MINUTE="5")  # one worker: the default registry
    assert not (api.data_dir / "prometheus").exists()
    organizer, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    event = create_event(api, organizer, [("General", 10, 100)])
    token, _ = register(api, unique_email("buyer"))
    statuses = [_hold(api, token, event).status_code for _ in range(7)]
    assert statuses.count(429) == 2, statuses
    families = scrape(f"{api.url}/metrics")
    assert value(families, "onsale_rate_limited_total", scope="orders") == 2
    assert value(families, "onsale_holds_total", result="rate_limited") == 2
    assert value(families, "onsale_holds_total", result="created") == 5
    assert "process_cpu_seconds" in families  # single-process mode keeps them


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert exprs, "no panel queries anything"
    names = set()
    for expr in exprs:
        names |= {m for m in re.findall(r"\b(onsale_[a-z_]+)", expr)}
    return names


def test_every_metric_of_the_dashboard_is_in_a_real_scrape(
    two_workers: ApiServer, helpers: dict[str, str]
) -> None:
    exposed: set[str] = set()
    token = os.environ.get("METRICS_TOKEN")  # development: per-event series served
    for url in (f"{two_workers.url}/metrics", helpers["writer"], helpers["sweeper"]):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        text = httpx.get(url, headers=headers, timeout=10).text
        for family in strict_parse(text).values():
            exposed |= {s.name for s in family.samples}
    missing = _dashboard_metrics() - exposed
    assert not missing, f"the dashboard names metrics no scrape has: {sorted(missing)}"
