"""Buyer protection over real HTTP and WebSocket (SPEC 10.2-10.4): the buyer cap under a
parallel rush, hold extension, the waitlist (race, offers down the list, the
``waitlist:offer`` frame), the sales view, and a restart of the API on the same Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    ApiServer,
    assert_audit_clean,
    bearer,
    create_event,
    expect_problem,
    register,
    start_api,
    unique_email,
)
from tests.integration.test_ws import connect, send, until, ws_url


@pytest.fixture(scope="module")
def server(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(
        WAITLIST_OFFER_MINUTES="0.02",  # 1.2 s offers: they expire down the list in the test
        HOLD_EXTENSIONS="1",
        HOLD_EXTENSION_MINUTES="5",
        HOLD_MAX_TOTAL_MINUTES="20",
    )


def hold(api: ApiServer, token: str, event: dict[str, Any], n: int = 1) -> httpx.Response:
    return httpx.post(
        f"{api.url}/api/orders",
        json={
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": n}],
        },
        headers=bearer(token),
        timeout=30,
    )


def join(api: ApiServer, token: str, event: dict[str, Any], n: int = 1) -> httpx.Response:
    return httpx.post(
        f"{api.url}/api/events/{event['id']}/waitlist",
        json={"categoriaId": event["categorias"][0]["id"], "cantidad": n},
        headers=bearer(token),
    )


def mine(api: ApiServer, token: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    r = httpx.get(f"{api.url}/api/events/{event['id']}/waitlist/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


def available(api: ApiServer, event: dict[str, Any]) -> int:
    r = httpx.get(f"{api.url}/api/events/{event['id']}")
    return int(r.json()["categorias"][0]["disponible"])


def audit_clean(api: ApiServer, event: dict[str, Any]) -> None:
    assert_audit_clean(api, event["id"])


def test_cap_race_holds_exactly_the_cap_and_release_gives_it_back(server: ApiServer) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(server, unique_email("b"))
    event = create_event(server, org, [("General", 10.0, 500)], maxPorComprador=6)
    assert event["maxPorComprador"] == 6
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: hold(server, buyer, event), range(50)))
    won = [r for r in answers if r.status_code == 201]
    assert len(won) == 6
    for r in answers:
        if r.status_code != 201:
            body = expect_problem(r, 409)
            assert body["code"] == "buyer_limit" and body["restantes"] == 0
    assert available(server, event) == 494
    r = httpx.put(f"{server.url}/api/orders/{won[0].json()['id']}/cancel", headers=bearer(buyer))
    assert r.status_code == 200
    assert hold(server, buyer, event).status_code == 201
    # Lowered below what the buyer holds: the orders stay, new holds are refused.
    r = httpx.put(
        f"{server.url}/api/events/{event['id']}", json={"maxPorComprador": 2}, headers=bearer(org)
    )
    assert r.status_code == 200 and r.json()["maxPorComprador"] == 2
    assert expect_problem(hold(server, buyer, event), 409)["code"] == "buyer_limit"
    r = httpx.put(
        f"{server.url}/api/events/{event['id']}",
        json={"maxPorComprador": None},
        headers=bearer(org),
    )
    assert r.json()["maxPorComprador"] is None
    assert hold(server, buyer, event).status_code == 201
    audit_clean(server, event)


def test_extension_limits_owner_and_contested(server: ApiServer) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(server, unique_email("b"))
    other, _ = register(server, unique_email("o"))
    event = create_event(server, org, [("General", 10.0, 2)])
    order = hold(server, buyer, event).json()
    url = f"{server.url}/api/orders/{order['id']}/extend"
    assert expect_problem(httpx.put(url, headers=bearer(other)), 404)["code"] == "order_not_found"
    r = httpx.put(url, headers=bearer(buyer))
    assert r.status_code == 200, r.text
    assert r.json()["expiraEn"] > order["expiraEn"]
    body = expect_problem(httpx.put(url, headers=bearer(buyer)), 409)
    assert (body["code"], body["reason"]) == ("extension_refused", "limit")
    second = hold(server, buyer, event).json()  # sold out now
    assert join(server, other, event).status_code == 201
    body = expect_problem(
        httpx.put(f"{server.url}/api/orders/{second['id']}/extend", headers=bearer(buyer)), 409
    )
    assert body["reason"] == "contested"
    httpx.put(
        f"{server.url}/api/orders/{order['id']}/confirm",
        json={"metodoPago": "card", "transactionId": "t-ext"},
        headers=bearer(buyer),
    )
    body = expect_problem(httpx.put(url, headers=bearer(buyer)), 409)
    assert body["reason"] == "not_reserved"


def test_waitlist_bad_input(server: ApiServer) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(server, unique_email("b"))
    event = create_event(server, org, [("General", 10.0, 1)])
    assert expect_problem(join(server, buyer, event), 409)["code"] == "stock_available"
    hold(server, org, event)
    unknown = {**event, "categorias": [{"id": "nope"}]}
    assert expect_problem(join(server, buyer, unknown), 404)["code"] == "category_not_found"
    assert expect_problem(join(server, buyer, event, 11), 422)["code"] == "limit_exceeded"
    assert join(server, buyer, event).status_code == 201
    assert expect_problem(join(server, buyer, event), 409)["code"] == "waitlist_duplicate"
    cat = event["categorias"][0]["id"]
    leave = f"{server.url}/api/events/{event['id']}/waitlist/me?categoriaId={cat}"
    assert httpx.delete(leave, headers=bearer(buyer)).status_code == 204
    assert expect_problem(httpx.delete(leave, headers=bearer(buyer)), 404)["code"] == (
        "not_in_waitlist"
    )
    assert mine(server, buyer, event)[0]["estado"] == "RETIRADO"


def test_waitlist_race_offers_each_ticket_once_in_order_and_down_the_list(
    server: ApiServer,
) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    holder, _ = register(server, unique_email("h"))
    event = create_event(server, org, [("General", 10.0, 5)])
    held = [hold(server, holder, event).json() for _ in range(5)]
    waiting = [register(server, unique_email(f"w{i}")) for i in range(8)]
    for i, (token, _) in enumerate(waiting):
        entry = join(server, token, event).json()
        assert (entry["posicion"], entry["estado"]) == (i + 1, "ESPERANDO")
    with ThreadPoolExecutor(5) as pool:
        list(
            pool.map(
                lambda o: httpx.put(
                    f"{server.url}/api/orders/{o['id']}/cancel", headers=bearer(holder)
                ),
                held,
            )
        )
    states = [mine(server, t, event)[0] for t, _ in waiting]
    assert [s["estado"] for s in states] == ["OFERTADO"] * 5 + ["ESPERANDO"] * 3
    assert len({s["ordenId"] for s in states[:5]}) == 5
    assert available(server, event) == 0  # none visible as disponible meanwhile
    audit_clean(server, event)
    sales = httpx.get(
        f"{server.url}/api/admin/events/{event['id']}/sales", headers=bearer(org)
    ).json()
    assert sales["categorias"][0]["enEspera"] == 3
    # The first buyer takes the offer; the other four expire and go to the next three.
    first = states[0]
    r = httpx.put(
        f"{server.url}/api/orders/{first['ordenId']}/confirm",
        json={"metodoPago": "card", "transactionId": "wl-1"},
        headers=bearer(waiting[0][0]),
    )
    assert r.status_code == 200, r.text
    end = time.monotonic() + 15
    while time.monotonic() < end:
        states = [mine(server, t, event)[0]["estado"] for t, _ in waiting]
        # Four offers expire one release at a time: wait for the last of them.
        if states[1:5] == ["CADUCADO"] * 4 and states[5:] == ["OFERTADO"] * 3:
            break
        time.sleep(0.2)
    assert states[0] == "COMPRADO"
    assert states[1:5] == ["CADUCADO"] * 4
    assert states[5:] == ["OFERTADO"] * 3
    assert available(server, event) == 1  # four expired offers, three waiters left
    audit_clean(server, event)


async def test_waitlist_offer_frame_reaches_the_buyer_and_survives_a_restart(
    server: ApiServer,
) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    holder, _ = register(server, unique_email("h"))
    buyer, buyer_user = register(server, unique_email("b"))
    event = create_event(server, org, [("General", 10.0, 1)])
    order = hold(server, holder, event).json()
    assert join(server, buyer, event).status_code == 201
    async with connect(ws_url(server, buyer)) as ws:
        await send(ws, "join:user", userId=buyer_user["id"])
        await until(ws, lambda m: m["event"] == "joined")
        await asyncio.sleep(1.5)  # the hub refreshes the events its user rooms follow
        r = httpx.put(f"{server.url}/api/orders/{order['id']}/cancel", headers=bearer(holder))
        assert r.status_code == 200
        got = await until(ws, lambda m: m["event"] == "waitlist:offer")
    data = got[-1]["data"]
    assert data["eventoId"] == event["id"] and data["categoriaId"] == event["categorias"][0]["id"]
    entry = mine(server, buyer, event)[0]
    assert entry["ordenId"] == data["orderId"] and entry["ofertaExpiraEn"] == data["expiraEn"]
    # An API restart on the same Redis keeps the list and the offer.
    server.stop()
    keep = {k: v for k, v in server.env.items() if k.startswith(("WAITLIST_", "HOLD_"))}
    again = start_api(server.data_dir.parent, server.redis, **keep)  # same store, same Redis
    try:
        assert mine(again, buyer, event)[0]["ordenId"] == data["orderId"]
        r = httpx.get(f"{again.url}/api/orders/{data['orderId']}", headers=bearer(buyer))
        assert r.status_code == 200 and r.json()["estado"] in ("RESERVED", "EXPIRED")
        audit_clean(again, event)
    finally:
        again.stop()
