"""Revenue is what buyers paid, and admin order lists read their writes: through real HTTP
against real servers, one with the order writer running and one without (nothing is
ever stored there, so what the lists and figures show can only come from Redis)."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from engine.keys import DEAD_LETTER
from tests.integration.conftest import REPO, ApiServer, create_event, register
from tests.integration.conftest import bearer as _auth
from tests.integration.conftest import unique_email as _email


def _seeded(server: ApiServer) -> ApiServer:
    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"],
        cwd=REPO,
        env=server.env,
        check=True,
        capture_output=True,
    )
    for role, email, password in (
        ("ADMIN", "admin@test.com", "Admin123!"),
        ("ORGANIZADOR", "organizador@test.com", "Org123!"),
    ):
        r = httpx.post(f"{server.url}/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        server.tokens[role] = r.json()["token"]
    return server


@pytest.fixture(scope="module")
def with_writer(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return _seeded(api_factory())


@pytest.fixture(scope="module")
def without_writer(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return _seeded(api_factory(RUN_WRITER="false"))


@pytest.fixture(params=["with_writer", "without_writer"])
def server(request: pytest.FixtureRequest) -> ApiServer:
    api: ApiServer = request.getfixturevalue(request.param)
    return api


def _buy(api: ApiServer, token: str, event: dict[str, Any], *items: tuple[int, int]) -> dict:
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][i]["id"], "cantidad": q} for i, q in items],
    }
    r = httpx.post(f"{api.url}/api/orders", json=body, headers=_auth(token), timeout=30)
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    r = httpx.put(
        f"{api.url}/api/orders/{order_id}/confirm",
        json={"metodoPago": "card", "transactionId": f"tx-{uuid.uuid4().hex[:8]}"},
        headers=_auth(token),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()
    return order


def _get(api: ApiServer, path: str, token: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{api.url}{path}", params=params, headers=_auth(token), timeout=30)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _reprice(api: ApiServer, token: str, event: dict[str, Any], index: int, price: float) -> None:
    category = event["categorias"][index]["id"]
    r = httpx.put(
        f"{api.url}/api/events/{event['id']}/categories/{category}",
        json={"precio": price},
        headers=_auth(token),
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_revenue_is_what_buyers_paid_not_todays_price(server: ApiServer) -> None:
    admin, organizer = server.tokens["ADMIN"], server.tokens["ORGANIZADOR"]
    buyer = register(server, _email("payer"))[0]
    event = create_event(server, organizer, [("VIP", 150.0, 10), ("General", 40.0, 100)])
    before = _get(server, "/api/admin/stats", admin)["ingresos"]

    _buy(server, buyer, event, (0, 1))
    _reprice(server, organizer, event, 0, 1000.0)
    _buy(server, buyer, event, (0, 1), (1, 2))  # one VIP at 1000 now, two General at 40

    sales = _get(server, f"/api/admin/events/{event['id']}/sales", admin)
    by_name = {c["nombre"]: c for c in sales["categorias"]}
    assert (by_name["VIP"]["vendidos"], by_name["VIP"]["ingresos"]) == (2, 1150.0)
    assert (by_name["General"]["vendidos"], by_name["General"]["ingresos"]) == (2, 80.0)
    assert by_name["VIP"]["precio"] == 1000.0  # today's price is still shown as the price
    assert sales["ingresos"] == 1230.0
    # the organizer sees the same figures
    assert _get(server, f"/api/admin/events/{event['id']}/sales", organizer) == sales
    after = _get(server, "/api/admin/stats", admin)["ingresos"]
    assert round(after - before, 2) == 1230.0


def test_a_confirmed_order_is_listed_at_once(server: ApiServer) -> None:
    admin, organizer = server.tokens["ADMIN"], server.tokens["ORGANIZADOR"]
    buyer = register(server, _email("quick"))[0]
    event = create_event(server, organizer, [("VIP", 150.0, 10)])
    older = _buy(server, buyer, event, (0, 1))
    order = _buy(server, buyer, event, (0, 2))

    listed = _get(
        server, "/api/admin/orders", admin, estado="CONFIRMED", eventoId=event["id"], limit=10
    )
    assert [o["id"] for o in listed["data"]] == [order["id"], older["id"]]
    assert listed["data"][0]["estado"] == "CONFIRMED"
    assert listed["data"][0]["total"] == 300.0
    assert listed["pagination"]["total"] == 2

    page2 = _get(
        server,
        "/api/admin/orders",
        admin,
        estado="CONFIRMED",
        eventoId=event["id"],
        limit=1,
        page=2,
    )
    assert [o["id"] for o in page2["data"]] == [older["id"]]
    assert page2["pagination"]["total"] == 2
    assert (
        _get(server, "/api/admin/orders", admin, estado="RESERVED", eventoId=event["id"])[
            "pagination"
        ]["total"]
        == 0
    )
    everything = _get(server, "/api/admin/orders", admin, limit=100)
    assert {order["id"], older["id"]} <= {o["id"] for o in everything["data"]}
    stats = _get(server, "/api/admin/stats", admin)
    assert stats["ordenesPorEstado"].get("CONFIRMED", 0) >= 2


def test_dead_letters_show_in_readiness_and_metrics(without_writer: ApiServer) -> None:
    api = without_writer
    ready = httpx.get(f"{api.url}/health/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert (ready.json()["status"], ready.json()["checks"]["deadLetters"]) == ("ok", 0)

    with SyncRedis.from_url(api.redis.url) as client:
        entry = client.xadd(DEAD_LETTER, {"stream": "os:{evt:x}:log", "error": "test"})
        try:
            ready = httpx.get(f"{api.url}/health/ready", timeout=30)
            assert ready.status_code == 200, ready.text  # data for an operator, not a 503
            body = ready.json()
            assert body["status"] == "degraded"
            assert body["degraded"] == ["deadLetters"]
            assert body["checks"]["deadLetters"] == 1
            metrics = httpx.get(f"{api.url}/metrics", timeout=30).text
            assert re.search(r"^onsale_writer_dead_letters 1\.0$", metrics, re.M), metrics
        finally:
            client.xdel(DEAD_LETTER, entry)


def test_a_confirmed_order_is_in_the_csv_export_at_once(server: ApiServer) -> None:
    """The CSV export reads what the writer has not stored yet, as the JSON list does:
    without a writer nothing is stored, and the confirmed orders are there all the same,
    each once."""
    admin, organizer = server.tokens["ADMIN"], server.tokens["ORGANIZADOR"]
    buyer = register(server, _email("csv"))[0]
    event = create_event(server, organizer, [("VIP", 150.0, 10)])
    orders = [_buy(server, buyer, event, (0, 1)), _buy(server, buyer, event, (0, 2))]
    for path, token, query in (
        (f"/api/admin/events/{event['id']}/orders.csv", organizer, {}),
        ("/api/admin/orders.csv", admin, {"eventoId": event["id"], "estado": "CONFIRMED"}),
    ):
        r = httpx.get(f"{server.url}{path}", headers=_auth(token), params=query)
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["id"] for row in rows] == [orders[1]["id"], orders[0]["id"]]
        assert {row["estado"] for row in rows} == {"CONFIRMED"}
        assert [row["total"] for row in rows] == ["300.00", "150.00"]
