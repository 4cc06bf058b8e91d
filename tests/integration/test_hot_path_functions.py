"""What left the hot path keeps its function: the request series Litestar's Prometheus
middleware exported (api/http_metrics.py) are still counted with the same names and
labels, the security headers and request id are still sent, and a sold-out hold refused
by the stock gate (api/services/stock_gate.py) is the same problem as the script's."""

from __future__ import annotations

import re
import time

import httpx

from tests.integration.conftest import ApiServer, create_event, register, unique_email


def _series(api: ApiServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{api.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(?P<labels>.*)\}} (?P<value>\S+)$", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m["value"])
    return total


def test_requests_are_counted_and_headers_sent(api: ApiServer) -> None:
    org, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(api, unique_email("b"))
    event = create_event(api, org, [("A", 10.0, 1)])
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    route = {"method": "POST", "path": "/api/orders", "app_name": "onsale"}
    before_201 = _series(api, "onsale_requests_total", status_code="201", **route)
    before_409 = _series(api, "onsale_requests_total", status_code="409", **route)
    before_hist = _series(api, "onsale_request_duration_seconds_count", status_code="201", **route)
    headers = {"Authorization": f"Bearer {buyer}"}
    held = httpx.post(f"{api.url}/api/orders", json=body, headers=headers)
    assert held.status_code == 201, held.text
    for r in (held,):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert r.headers["x-request-id"]
    refusals = []
    for _ in range(5):  # the script's refusal, then (once the gate caught up) the gate's
        r = httpx.post(f"{api.url}/api/orders", json=body, headers=headers)
        refusals.append(r)
        time.sleep(0.1)
    for r in refusals:
        assert r.status_code == 409
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-request-id"]
        assert r.json() == refusals[0].json() | {"instance": r.json().get("instance")}
    assert _series(api, "onsale_requests_total", status_code="201", **route) == before_201 + 1
    assert _series(api, "onsale_requests_total", status_code="409", **route) == before_409 + 5
    hist = _series(api, "onsale_request_duration_seconds_count", status_code="201", **route)
    assert hist == before_hist + 1
    # Templates, not raw paths: one series per route.
    httpx.get(f"{api.url}/api/orders/nope-{time.time_ns()}", headers=headers)
    assert _series(api, "onsale_requests_total", method="GET", path="/api/orders/{order_id}") >= 1
    # Excluded as before.
    assert _series(api, "onsale_requests_total", path="/metrics") == 0
