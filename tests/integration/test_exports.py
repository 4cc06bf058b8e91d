"""CSV exports (SPEC 11.2) through HTTP against a real server: header, one row per order
line, formula escaping, filters, access, and a streamed export of many orders."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from engine.models import Order, Ticket
from persistence.sqlite import SQLiteStore
from tests.integration.conftest import (
    ApiServer,
    bearer,
    create_event,
    expect_problem,
    register,
    unique_email,
)

pytestmark = pytest.mark.timeout(180)

HEADER = (
    "id,eventoId,usuarioId,estado,categoria,cantidad,precioUnitario,total,creadoEn,"
    "confirmadoEn,metodoPago,transactionId"
)


def read_csv(r: httpx.Response) -> list[dict[str, str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    text = r.content.decode("utf-8")
    assert text.split("\r\n", 1)[0] == HEADER
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def sale(api: ApiServer) -> dict[str, Any]:
    org, _ = register(api, unique_email("csvorg"), role="ORGANIZADOR")
    buyer, buyer_user = register(api, unique_email("csvbuyer"))
    event = create_event(api, org, [("=HYPERLINK(evil)", 12.5, 50), ('Plain, "quoted"', 30.0, 50)])
    cats = [c["id"] for c in event["categorias"]]
    orders = []
    for _ in range(4):
        r = httpx.post(
            f"{api.url}/api/orders",
            json={
                "eventoId": event["id"],
                "tickets": [
                    {"categoriaId": cats[0], "cantidad": 2},
                    {"categoriaId": cats[1], "cantidad": 1},
                ],
            },
            headers=bearer(buyer),
        )
        assert r.status_code == 201, r.text
        orders.append(r.json())
    for o, tx in zip(orders[:2], ["+cmd|' /C calc'!A0", "@SUM(1+1)"], strict=True):
        r = httpx.put(
            f"{api.url}/api/orders/{o['id']}/confirm",
            json={"metodoPago": "-card", "transactionId": tx},
            headers=bearer(buyer),
        )
        assert r.status_code == 200, r.text
    # No wait for the writer: the export reads what it has not stored yet from the order
    # logs (read-your-writes, as the JSON admin list).
    return {"org": org, "buyer": buyer, "buyer_user": buyer_user, "event": event, "orders": orders}


def test_event_export_rows_and_escaping(api: ApiServer, sale: dict[str, Any]) -> None:
    r = httpx.get(
        f"{api.url}/api/admin/events/{sale['event']['id']}/orders.csv", headers=bearer(sale["org"])
    )
    rows = read_csv(r)
    assert "attachment" in r.headers["content-disposition"]
    assert len(rows) == 8  # 4 orders x 2 lines
    assert {row["id"] for row in rows} == {o["id"] for o in sale["orders"]}
    by_cat = {row["categoria"] for row in rows}
    assert by_cat == {"'=HYPERLINK(evil)", 'Plain, "quoted"'}  # formula escaped, quotes kept
    confirmed = [row for row in rows if row["estado"] == "CONFIRMED"]
    assert len(confirmed) == 4
    assert {row["transactionId"] for row in confirmed} == {"'+cmd|' /C calc'!A0", "'@SUM(1+1)"}
    assert {row["metodoPago"] for row in confirmed} == {"'-card"}
    assert all(row["confirmadoEn"].endswith("Z") for row in confirmed)
    first = next(row for row in rows if row["categoria"].startswith("'="))
    assert (first["cantidad"], first["precioUnitario"], first["total"]) == ("2", "12.50", "55.00")
    assert first["usuarioId"] == sale["buyer_user"]["id"]
    reserved = [row for row in rows if row["estado"] == "RESERVED"]
    assert all(row["confirmadoEn"] == "" and row["metodoPago"] == "" for row in reserved)


def test_admin_export_filters(api: ApiServer, sale: dict[str, Any]) -> None:
    admin = bearer(api.tokens["ADMIN"])
    event_id = sale["event"]["id"]
    rows = read_csv(
        httpx.get(
            f"{api.url}/api/admin/orders.csv?eventoId={event_id}&estado=CONFIRMED", headers=admin
        )
    )
    assert len(rows) == 4 and {row["estado"] for row in rows} == {"CONFIRMED"}
    rows = read_csv(httpx.get(f"{api.url}/api/admin/orders.csv?eventoId={event_id}", headers=admin))
    assert len(rows) == 8
    everything = read_csv(httpx.get(f"{api.url}/api/admin/orders.csv", headers=admin))
    assert len(everything) >= 8
    expect_problem(httpx.get(f"{api.url}/api/admin/orders.csv?estado=NOPE", headers=admin), 422)
    # the organizer's own event, as ADMIN too
    rows = read_csv(httpx.get(f"{api.url}/api/admin/events/{event_id}/orders.csv", headers=admin))
    assert len(rows) == 8


def test_export_access(api: ApiServer, sale: dict[str, Any]) -> None:
    event_id = sale["event"]["id"]
    other, _ = register(api, unique_email("csvother"), role="ORGANIZADOR")
    url = f"{api.url}/api/admin/events/{event_id}/orders.csv"
    expect_problem(httpx.get(url, headers=bearer(sale["buyer"])), 403)
    expect_problem(httpx.get(url, headers=bearer(other)), 403)
    expect_problem(httpx.get(url), 401)
    expect_problem(
        httpx.get(f"{api.url}/api/admin/events/nope/orders.csv", headers=bearer(other)), 404
    )
    expect_problem(httpx.get(f"{api.url}/api/admin/orders.csv", headers=bearer(sale["org"])), 403)
    expect_problem(httpx.get(f"{api.url}/api/admin/orders.csv", headers=bearer(sale["buyer"])), 403)


def test_many_orders_are_streamed(api: ApiServer) -> None:
    org, _ = register(api, unique_email("bulkorg"), role="ORGANIZADOR")
    event = create_event(api, org, [("General", 10.0, 10)])
    n = 12_000
    store = SQLiteStore(api.data_dir / "onsale.db")
    try:
        base = int(time.time() * 1000)
        batch = [
            Order(
                id=f"{event['id']}.{i:016x}",
                event_id=event["id"],
                user_id="bulk-user",
                tickets=[Ticket(category_id="c", name="General", quantity=1, unit_price=10.0)],
                total=10.0,
                status="CONFIRMED",
                expires_at=base + 600_000,
                created_at=base + i // 7,  # ties on creadoEn: the keyset breaks them by id
                confirmed_at=base + 1,
                payment_method="card",
                transaction_id=f"t{i}",
                version=2,
            )
            for i in range(n)
        ]
        store.upsert_orders(batch)
    finally:
        store.close()
    chunks = 0
    body = bytearray()
    with httpx.stream(
        "GET",
        f"{api.url}/api/admin/events/{event['id']}/orders.csv",
        headers=bearer(org),
        timeout=60,
    ) as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers  # streamed (chunked), not built in memory
        for chunk in r.iter_raw():
            chunks += 1
            body += chunk
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == n and len({row["id"] for row in rows}) == n
    assert chunks > 1


def test_a_writer_too_far_behind_is_a_503_not_a_cut_off_export(api_factory: Any) -> None:
    """An export (and the JSON list) lays the orders the writer has not stored yet over
    the store's rows, reading at most DEFAULT_CAP log entries. With more unstored than
    that, part of the overlay would silently miss orders: the answer is a 503
    ``store_behind`` with Retry-After, before any CSV byte."""
    import redis as redis_sync

    from engine import keys
    from persistence.writer.backlog import DEFAULT_CAP

    api = api_factory(RUN_WRITER="false")
    org, _ = register(api, unique_email("behindorg"), role="ORGANIZADOR")
    buyer, _ = register(api, unique_email("behindbuyer"))
    event = create_event(api, org, [("General", 10.0, 10)])
    ticket = {"categoriaId": event["categorias"][0]["id"], "cantidad": 1}
    hold = httpx.post(
        f"{api.url}/api/orders",
        json={"eventoId": event["id"], "tickets": [ticket]},
        headers=bearer(buyer),
    )
    assert hold.status_code == 201, hold.text
    csv_url = f"{api.url}/api/admin/events/{event['id']}/orders.csv"
    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"], env=api.env, check=True, capture_output=True
    )
    login = httpx.post(
        f"{api.url}/api/auth/login", json={"email": "admin@test.com", "password": "Admin123!"}
    )
    admin = bearer(login.json()["token"])
    list_url = f"{api.url}/api/admin/orders?eventoId={event['id']}"
    assert len(read_csv(httpx.get(csv_url, headers=bearer(org)))) == 1  # unstored, shown

    client = redis_sync.Redis.from_url(api.redis.url)
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(DEFAULT_CAP):  # a writer's backlog in a sale it cannot keep up with
            pipe.xadd(keys.order_log(event["id"]), {"junk": str(i)})
        pipe.execute()
    finally:
        client.close()
    for r in (httpx.get(csv_url, headers=bearer(org)), httpx.get(list_url, headers=admin)):
        body = expect_problem(r, 503)
        assert body["code"] == "store_behind", body
        assert int(r.headers["retry-after"]) >= 1
