"""Admin views (all orders, stats, per-event sales) and the operations endpoints (health,
metrics, OpenAPI schema), through real HTTP against a real server."""

from __future__ import annotations

import importlib.util
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, create_event, register
from tests.integration.conftest import bearer as _auth
from tests.integration.conftest import expect_problem as _problem
from tests.integration.conftest import problem_fields as _fields
from tests.integration.conftest import unique_email as _email


def _get(api: ApiServer, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"{api.url}{path}", params=params, headers=_auth(token), timeout=30)


def _hold(api: ApiServer, token: str, event: dict[str, Any], *items: tuple[int, int]) -> dict:
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][i]["id"], "cantidad": q} for i, q in items],
    }
    r = httpx.post(f"{api.url}/api/orders", json=body, headers=_auth(token), timeout=30)
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def _confirm(api: ApiServer, token: str, order_id: str) -> dict[str, Any]:
    r = httpx.put(
        f"{api.url}/api/orders/{order_id}/confirm",
        json={"metodoPago": "card", "transactionId": f"tx-{uuid.uuid4().hex[:8]}"},
        headers=_auth(token),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _cancel(api: ApiServer, token: str, order_id: str) -> None:
    r = httpx.put(f"{api.url}/api/orders/{order_id}/cancel", headers=_auth(token), timeout=30)
    assert r.status_code == 200, r.text


def _poll(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    """Fetch until ``ok`` holds or the time is up; returns the last value either way."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fetch()
    return value


def _writer_runs(api: ApiServer) -> bool:
    disabled = api.env.get("RUN_WRITER", "true").strip().lower() in ("0", "false", "no", "off")
    return not disabled and importlib.util.find_spec("persistence.writer") is not None


@pytest.fixture
def needs_writer(api: ApiServer) -> None:
    """Admin order lists read the store, which only the stream writer fills."""
    if not _writer_runs(api):
        pytest.skip("the order writer is not running (persistence/writer.py or RUN_WRITER)")


@pytest.fixture(scope="module")
def buyer(api: ApiServer) -> str:
    return register(api, _email("buyer"))[0]


# -- GET /api/admin/orders ---------------------------------------------------------------


def test_admin_orders_requires_admin(api: ApiServer, buyer: str) -> None:
    _problem(_get(api, "/api/admin/orders"), 401)
    _problem(_get(api, "/api/admin/orders", buyer), 403)
    _problem(_get(api, "/api/admin/orders", api.tokens["ORGANIZADOR"]), 403)
    r = _get(api, "/api/admin/orders", api.tokens["ADMIN"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"data", "pagination"}
    assert set(body["pagination"]) == {"page", "limit", "total", "totalPages"}
    assert body["pagination"]["page"] == 1 and body["pagination"]["limit"] == 20


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"estado": "PAID"}, "estado"),
        ({"eventoId": "bad id!"}, "eventoId"),
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"page": -1}, "page"),
    ],
)
def test_admin_orders_bad_query_is_422(api: ApiServer, params: dict[str, Any], field: str) -> None:
    problem = _problem(_get(api, "/api/admin/orders", api.tokens["ADMIN"], **params), 422)
    assert field in _fields(problem), problem


@pytest.mark.usefixtures("needs_writer")
def test_admin_orders_filters_by_event_and_state_and_paginates(api: ApiServer, buyer: str) -> None:
    admin = api.tokens["ADMIN"]
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 50)])
    other = create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 50)])
    confirmed = _hold(api, buyer, event, (0, 1))
    cancelled = _hold(api, buyer, event, (0, 2))
    reserved = _hold(api, buyer, event, (0, 3))
    foreign = _hold(api, buyer, other, (0, 1))
    _confirm(api, buyer, confirmed["id"])
    _cancel(api, buyer, cancelled["id"])
    want = {confirmed["id"]: "CONFIRMED", cancelled["id"]: "CANCELLED", reserved["id"]: "RESERVED"}

    def states() -> dict[str, str]:
        r = _get(api, "/api/admin/orders", admin, eventoId=event["id"], limit=100)
        assert r.status_code == 200, r.text
        return {o["id"]: o["estado"] for o in r.json()["data"]}

    assert _poll(states, lambda s: s == want) == want
    for estado, order in (
        ("CONFIRMED", confirmed),
        ("CANCELLED", cancelled),
        ("RESERVED", reserved),
    ):
        r = _get(api, "/api/admin/orders", admin, eventoId=event["id"], estado=estado)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [o["id"] for o in body["data"]] == [order["id"]]
        assert body["pagination"]["total"] == 1
    only_expired = _get(api, "/api/admin/orders", admin, eventoId=event["id"], estado="EXPIRED")
    assert only_expired.json()["data"] == []
    p1 = _get(api, "/api/admin/orders", admin, eventoId=event["id"], limit=2, page=1).json()
    p2 = _get(api, "/api/admin/orders", admin, eventoId=event["id"], limit=2, page=2).json()
    assert p1["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    assert len(p1["data"]) == 2 and len(p2["data"]) == 1
    assert {o["id"] for o in p1["data"] + p2["data"]} == set(want)
    assert foreign["id"] not in {o["id"] for o in p1["data"] + p2["data"]}
    # the unfiltered list has them all, and the confirmed one carries its payment
    everything = _poll(
        lambda: {
            o["id"]: o for o in _get(api, "/api/admin/orders", admin, limit=100).json()["data"]
        },
        lambda d: foreign["id"] in d,
    )
    assert set(want) | {foreign["id"]} <= set(everything)
    assert everything[confirmed["id"]]["metodoPago"] == "card"
    assert everything[confirmed["id"]]["transactionId"].startswith("tx-")


# -- GET /api/admin/stats ----------------------------------------------------------------


def _stats(api: ApiServer) -> dict[str, Any]:
    r = _get(api, "/api/admin/stats", api.tokens["ADMIN"])
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_stats_requires_admin(api: ApiServer, buyer: str) -> None:
    _problem(_get(api, "/api/admin/stats"), 401)
    _problem(_get(api, "/api/admin/stats", buyer), 403)
    _problem(_get(api, "/api/admin/stats", api.tokens["ORGANIZADOR"]), 403)


def test_stats_fields_and_live_numbers(api: ApiServer, buyer: str) -> None:
    before = _stats(api)
    assert set(before) >= {
        "usuariosPorRol",
        "eventos",
        "ordenesPorEstado",
        "ticketsVendidos",
        "ingresos",
        "reservasActivas",
        "ticketsRetenidos",
    }
    assert before["usuariosPorRol"]["ADMIN"] >= 1
    assert before["usuariosPorRol"]["ORGANIZADOR"] >= 1
    assert before["eventos"] >= 2
    assert isinstance(before["ordenesPorEstado"], dict)

    register(api, _email("stat"))
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 25, 10), ("B", 4, 10)])
    held = _hold(api, buyer, event, (0, 3))
    mid = _stats(api)
    assert mid["usuariosPorRol"]["COMPRADOR"] == before["usuariosPorRol"]["COMPRADOR"] + 1
    assert mid["eventos"] == before["eventos"] + 1
    assert mid["reservasActivas"] == before["reservasActivas"] + 1
    assert mid["ticketsRetenidos"] == before["ticketsRetenidos"] + 3
    assert mid["ticketsVendidos"] == before["ticketsVendidos"]

    _confirm(api, buyer, held["id"])
    sold = _hold(api, buyer, event, (1, 2))
    _confirm(api, buyer, sold["id"])
    after = _stats(api)
    assert after["reservasActivas"] == before["reservasActivas"]
    assert after["ticketsRetenidos"] == before["ticketsRetenidos"]
    assert after["ticketsVendidos"] == before["ticketsVendidos"] + 5
    assert after["ingresos"] == pytest.approx(before["ingresos"] + 3 * 25 + 2 * 4)


@pytest.mark.usefixtures("needs_writer")
def test_stats_orders_by_state_follow_the_store(api: ApiServer, buyer: str) -> None:
    """``ordenesPorEstado`` agrees with the admin order list, both read from the store."""
    admin = api.tokens["ADMIN"]
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 10)])
    confirmed = _hold(api, buyer, event, (0, 1))
    _confirm(api, buyer, confirmed["id"])
    _cancel(api, buyer, _hold(api, buyer, event, (0, 2))["id"])
    _hold(api, buyer, event, (0, 3))

    def listed_total(**params: Any) -> int:
        r = _get(api, "/api/admin/orders", admin, limit=1, **params)
        assert r.status_code == 200, r.text
        total: int = r.json()["pagination"]["total"]
        return total

    def snapshot() -> tuple[dict[str, int], dict[str, int], int]:
        by_state = _stats(api)["ordenesPorEstado"]
        listed = {s: listed_total(estado=s) for s in ("RESERVED", "CONFIRMED", "CANCELLED")}
        listed["*"] = listed_total()
        mine = listed_total(eventoId=event["id"])
        return by_state, listed, mine

    def consistent(snap: tuple[dict[str, int], dict[str, int], int]) -> bool:
        by_state, listed, mine = snap
        same = all(by_state.get(s, 0) == n for s, n in listed.items() if s != "*")
        return mine == 3 and same and sum(by_state.values()) == listed["*"]

    by_state, listed, mine = _poll(snapshot, consistent)
    assert mine == 3
    for state, count in listed.items():
        if state != "*":
            assert by_state.get(state, 0) == count, (state, by_state, listed)
    assert sum(by_state.values()) == listed["*"], (by_state, listed)
    assert by_state.get("CONFIRMED", 0) >= 1
    assert by_state.get("CANCELLED", 0) >= 1
    assert by_state.get("RESERVED", 0) >= 1


# -- GET /api/admin/events/{id}/sales ----------------------------------------------------


def test_sales_for_the_events_organizer_and_admin(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("VIP", 100, 10), ("General", 20, 40)])
    vip, gen = (c["id"] for c in event["categorias"])
    _confirm(api, buyer, _hold(api, buyer, event, (0, 2), (1, 1))["id"])
    _hold(api, buyer, event, (0, 3))
    cancelled = _hold(api, buyer, event, (1, 5))
    _cancel(api, buyer, cancelled["id"])
    r = _get(api, f"/api/admin/events/{event['id']}/sales", org)
    assert r.status_code == 200, r.text
    sales = r.json()
    assert sales["eventoId"] == event["id"]
    assert sales["nombre"] == event["nombre"]
    rows = {c["categoriaId"]: c for c in sales["categorias"]}
    assert rows[vip] == {
        "categoriaId": vip,
        "nombre": "VIP",
        "precio": 100,
        "total": 10,
        "vendidos": 2,
        "retenidos": 3,
        "disponibles": 5,
        "ingresos": 200,
        "enEspera": 0,
    }
    assert rows[gen]["vendidos"] == 1 and rows[gen]["retenidos"] == 0
    assert rows[gen]["disponibles"] == 39 and rows[gen]["ingresos"] == 20
    assert sales["total"] == 50
    assert sales["vendidos"] == 3 and sales["retenidos"] == 3 and sales["disponibles"] == 44
    assert sales["ingresos"] == 220
    admin = _get(api, f"/api/admin/events/{event['id']}/sales", api.tokens["ADMIN"])
    assert admin.status_code == 200 and admin.json() == sales


def test_sales_for_another_organizer_or_a_buyer_is_403(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    other, _ = register(api, _email("rival"), role="ORGANIZADOR")
    path = f"/api/admin/events/{event['id']}/sales"
    _problem(_get(api, path, other), 403)
    _problem(_get(api, path, buyer), 403)
    _problem(_get(api, path), 401)


def test_sales_of_unknown_event_is_404(api: ApiServer) -> None:
    _problem(
        _get(api, "/api/admin/events/ffffffffffffffffffffffff/sales", api.tokens["ADMIN"]), 404
    )


# -- operations --------------------------------------------------------------------------


def test_health_live(api: ApiServer) -> None:
    r = _get(api, "/health/live")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"


def test_health_ready_reports_redis_store_and_scripts(api: ApiServer) -> None:
    r = _get(api, "/health/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["store"] == "ok"
    assert body["checks"]["scripts"] in ("ok", "reloaded")
    if _writer_runs(api):
        assert "writerLag" in body["checks"]


def test_metrics_is_prometheus_text_with_live_stock(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 10)])
    _hold(api, buyer, event, (0, 4))
    r = _get(api, "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE onsale_tickets_held gauge" in text

    def gauge(name: str) -> float:
        m = re.search(rf'^{name}{{event="{event["id"]}"}} ([0-9.e+]+)$', text, re.M)
        assert m, f"{name} for {event['id']} missing"
        return float(m.group(1))

    assert gauge("onsale_tickets_held") == 4
    assert gauge("onsale_tickets_available") == 6
    assert gauge("onsale_tickets_sold") == 0


def test_schema_serves_a_ui_and_the_openapi_document(api: ApiServer) -> None:
    ui = _get(api, "/schema")
    assert ui.status_code == 200, ui.text
    assert ui.headers["content-type"].startswith("text/html")
    r = _get(api, "/schema/openapi.json")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    for path in (
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/profile",
        "/api/events",
        "/api/events/search",
        "/api/events/{event_id}",
        "/api/events/{event_id}/categories",
        "/api/events/{event_id}/categories/{category_id}",
        "/api/orders",
        "/api/orders/my-orders",
        "/api/orders/{order_id}",
        "/api/orders/{order_id}/confirm",
        "/api/orders/{order_id}/cancel",
        "/api/admin/orders",
        "/api/admin/stats",
        "/api/admin/events/{event_id}/sales",
        "/health/live",
        "/health/ready",
    ):
        assert path in paths, path
    assert "BearerToken" in doc["components"]["securitySchemes"]
    # The hold sends a pre-encoded body; its schema still names the order it returns.
    created = doc["paths"]["/api/orders"]["post"]["responses"]["201"]
    schema = created["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/OrderOut"}
