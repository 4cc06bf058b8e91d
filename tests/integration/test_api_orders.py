"""Orders through real HTTP: hold, idempotent retry, my-orders, get, confirm, cancel and
expiry, against a real server and redis-server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, create_event, register
from tests.integration.conftest import bearer as _auth
from tests.integration.conftest import expect_problem as _problem
from tests.integration.conftest import problem_fields as _fields
from tests.integration.conftest import unique_email as _email


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _order(
    api: ApiServer,
    token: str | None,
    event_id: str,
    items: list[tuple[str, int]],
    key: str | None = None,
) -> httpx.Response:
    headers = _auth(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"eventoId": event_id, "tickets": [{"categoriaId": c, "cantidad": q} for c, q in items]}
    return httpx.post(f"{api.url}/api/orders", json=body, headers=headers, timeout=30)


def _hold(api: ApiServer, token: str, event: dict[str, Any], qty: int, cat: int = 0) -> dict:
    r = _order(api, token, event["id"], [(event["categorias"][cat]["id"], qty)])
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def _get(api: ApiServer, path: str, token: str | None, **params: Any) -> httpx.Response:
    return httpx.get(f"{api.url}{path}", params=params, headers=_auth(token), timeout=30)


def _put(api: ApiServer, path: str, token: str | None, body: Any = None) -> httpx.Response:
    return httpx.put(f"{api.url}{path}", json=body, headers=_auth(token), timeout=30)


def _confirm(
    api: ApiServer, token: str | None, order_id: str, tx: str = "tx-1", method: str = "card"
) -> httpx.Response:
    return _put(
        api, f"/api/orders/{order_id}/confirm", token, {"metodoPago": method, "transactionId": tx}
    )


def _cancel(api: ApiServer, token: str | None, order_id: str) -> httpx.Response:
    return _put(api, f"/api/orders/{order_id}/cancel", token)


def _stock(api: ApiServer, event_id: str) -> dict[str, int]:
    r = _get(api, f"/api/events/{event_id}", None)
    assert r.status_code == 200, r.text
    return {c["id"]: c["disponible"] for c in r.json()["categorias"]}


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def buyer(api: ApiServer) -> tuple[str, dict[str, Any]]:
    return register(api, _email("buyer"))


@pytest.fixture
def event(api: ApiServer) -> dict[str, Any]:
    return create_event(api, api.tokens["ORGANIZADOR"], [("VIP", 150, 20), ("General", 50, 30)])


# -- create ------------------------------------------------------------------------------


def test_create_order_is_201_reserved_with_ten_minute_hold(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token, user = buyer
    vip, gen = (c["id"] for c in event["categorias"])
    r = _order(api, token, event["id"], [(vip, 2), (gen, 3)])
    assert r.status_code == 201, r.text
    assert "Idempotent-Replayed" not in r.headers
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    order = r.json()
    assert order["estado"] == "RESERVED"
    assert order["eventoId"] == event["id"]
    assert order["usuarioId"] == user["id"]
    assert isinstance(order["id"], str) and order["id"]
    assert {k for k in order} >= {
        "id",
        "eventoId",
        "usuarioId",
        "tickets",
        "total",
        "estado",
        "expiraEn",
        "creadoEn",
    }
    for absent in ("confirmadoEn", "metodoPago", "transactionId"):
        assert order.get(absent) is None
    tickets = {t["categoriaId"]: t for t in order["tickets"]}
    assert tickets[vip] == {
        "categoriaId": vip,
        "nombre": "VIP",
        "cantidad": 2,
        "precioUnitario": 150,
    }
    assert tickets[gen]["cantidad"] == 3 and tickets[gen]["precioUnitario"] == 50
    assert order["total"] == 2 * 150 + 3 * 50
    created, expires = _ts(order["creadoEn"]), _ts(order["expiraEn"])
    assert abs((expires - created) - 600) <= 2
    assert abs(created - time.time()) < 120
    assert _stock(api, event["id"]) == {vip: 18, gen: 27}


def test_create_order_unauthenticated_is_401(api: ApiServer, event: dict[str, Any]) -> None:
    _problem(_order(api, None, event["id"], [(event["categorias"][0]["id"], 1)]), 401)
    assert _stock(api, event["id"])[event["categorias"][0]["id"]] == 20


def test_create_order_unknown_event_is_404(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    r = _order(api, buyer[0], "ffffffffffffffffffffffff", [(event["categorias"][0]["id"], 1)])
    _problem(r, 404)


def test_create_order_unknown_category_is_404_naming_it(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    r = _order(api, buyer[0], event["id"], [("nosuchcategory", 1)])
    body = _problem(r, 404)
    assert body.get("categoriaId") == "nosuchcategory"


def test_sold_out_is_409_naming_the_category(
    api: ApiServer, buyer: tuple[str, dict[str, Any]]
) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("Solo", 10, 3)])
    cat = event["categorias"][0]["id"]
    _hold(api, buyer[0], event, 2)
    body = _problem(_order(api, buyer[0], event["id"], [(cat, 2)]), 409)
    assert body["categoriaId"] == cat
    assert _stock(api, event["id"]) == {cat: 1}
    _hold(api, buyer[0], event, 1)
    body = _problem(_order(api, buyer[0], event["id"], [(cat, 1)]), 409)
    assert body["categoriaId"] == cat
    assert _stock(api, event["id"]) == {cat: 0}


def test_multi_category_order_is_all_or_nothing(
    api: ApiServer, buyer: tuple[str, dict[str, Any]]
) -> None:
    token = buyer[0]
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 5), ("B", 10, 1)])
    a, b = (c["id"] for c in event["categorias"])
    body = _problem(_order(api, token, event["id"], [(a, 3), (b, 2)]), 409)
    assert body["categoriaId"] == b
    assert _stock(api, event["id"]) == {a: 5, b: 1}
    mine = _get(api, "/api/orders/my-orders", token).json()
    assert mine["data"] == [] and mine["pagination"]["total"] == 0
    ok = _order(api, token, event["id"], [(a, 3), (b, 1)])
    assert ok.status_code == 201, ok.text
    assert _stock(api, event["id"]) == {a: 2, b: 0}


@pytest.mark.parametrize(
    "split",
    [[(0, 11)], [(0, 6), (1, 5)], [(0, 6), (0, 5)]],
    ids=["one-category", "two-categories", "same-category-twice"],
)
def test_per_order_limit_is_422(
    api: ApiServer,
    buyer: tuple[str, dict[str, Any]],
    event: dict[str, Any],
    split: list[tuple[int, int]],
) -> None:
    items = [(event["categorias"][i]["id"], q) for i, q in split]
    _problem(_order(api, buyer[0], event["id"], items), 422)
    assert _stock(api, event["id"]) == {c["id"]: c["cantidadTotal"] for c in event["categorias"]}


def test_per_order_limit_allows_exactly_ten(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    vip, gen = (c["id"] for c in event["categorias"])
    r = _order(api, buyer[0], event["id"], [(vip, 4), (gen, 6)])
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"eventoId": "x", "tickets": []}, "tickets"),
        (
            {"eventoId": "x", "tickets": [{"categoriaId": "a", "cantidad": 0}]},
            "tickets[0].cantidad",
        ),
        (
            {"eventoId": "x", "tickets": [{"categoriaId": "a", "cantidad": -1}]},
            "tickets[0].cantidad",
        ),
        ({"eventoId": "bad id!", "tickets": [{"categoriaId": "a", "cantidad": 1}]}, "eventoId"),
        ({"eventoId": 12, "tickets": [{"categoriaId": "a", "cantidad": 1}]}, "eventoId"),
        ({"eventoId": "x", "tickets": "VIP"}, "tickets"),
        ({"eventoId": "x"}, "tickets"),
        ({"eventoId": "x", "tickets": [{"categoriaId": "a", "cantidad": 1}], "total": 0}, "total"),
    ],
    ids=[
        "empty",
        "zero",
        "negative",
        "bad-id",
        "int-id",
        "tickets-str",
        "missing-tickets",
        "unknown-field",
    ],
)
def test_create_order_invalid_body_is_422_naming_the_field(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], body: dict[str, Any], field: str
) -> None:
    r = httpx.post(f"{api.url}/api/orders", json=body, headers=_auth(buyer[0]), timeout=30)
    problem = _problem(r, 422)
    assert field in _fields(problem), problem


def test_quantity_given_as_a_string_is_422_and_holds_nothing(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    """JSON types are strict: "2" is not a number (the seed validated with Zod)."""
    cat = event["categorias"][0]["id"]
    body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": "2"}]}
    r = httpx.post(f"{api.url}/api/orders", json=body, headers=_auth(buyer[0]), timeout=30)
    problem = _problem(r, 422)
    assert "tickets[0].cantidad" in _fields(problem), problem
    assert _stock(api, event["id"])[cat] == 20


def test_bad_idempotency_key_is_422(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    cat = event["categorias"][0]["id"]
    _problem(_order(api, buyer[0], event["id"], [(cat, 1)], key="has spaces"), 422)
    _problem(_order(api, buyer[0], event["id"], [(cat, 1)], key="k" * 129), 422)
    assert _stock(api, event["id"])[cat] == 20


# -- idempotency -------------------------------------------------------------------------


def test_idempotency_key_retry_returns_same_order_once(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    cat = event["categorias"][0]["id"]
    key = f"idem-{uuid.uuid4().hex}"
    first = _order(api, token, event["id"], [(cat, 3)], key=key)
    assert first.status_code == 201, first.text
    assert first.headers.get("Idempotent-Replayed") is None
    second = _order(api, token, event["id"], [(cat, 3)], key=key)
    assert second.status_code == 201, second.text
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["estado"] == "RESERVED"
    assert _stock(api, event["id"])[cat] == 17
    mine = _get(api, "/api/orders/my-orders", token).json()
    assert [o["id"] for o in mine["data"]] == [first.json()["id"]]
    # a new key is a new order
    third = _order(api, token, event["id"], [(cat, 1)], key=f"idem-{uuid.uuid4().hex}")
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert _stock(api, event["id"])[cat] == 16


def test_same_idempotency_key_from_another_user_is_a_new_order(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    other, other_user = register(api, _email("other"))
    cat = event["categorias"][0]["id"]
    key = f"shared-{uuid.uuid4().hex}"
    mine = _order(api, buyer[0], event["id"], [(cat, 2)], key=key)
    theirs = _order(api, other, event["id"], [(cat, 2)], key=key)
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    assert theirs.headers.get("Idempotent-Replayed") is None
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["usuarioId"] == other_user["id"]
    assert _stock(api, event["id"])[cat] == 16


# -- my-orders and get -------------------------------------------------------------------


def test_my_orders_reads_its_writes_newest_first(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    other, _ = register(api, _email("other"))
    ids = []
    for qty in (1, 2, 3):
        ids.append(_hold(api, token, event, qty)["id"])
        r = _get(api, "/api/orders/my-orders", token)
        assert r.status_code == 200, r.text
        assert r.json()["data"][0]["id"] == ids[-1]  # visible at once
    foreign = _hold(api, other, event, 1)["id"]
    body = _get(api, "/api/orders/my-orders", token).json()
    assert [o["id"] for o in body["data"]] == ids[::-1]
    assert foreign not in {o["id"] for o in body["data"]}
    assert body["pagination"] == {"page": 1, "limit": 20, "total": 3, "totalPages": 1}
    assert all(o["estado"] == "RESERVED" for o in body["data"])
    page2 = _get(api, "/api/orders/my-orders", token, limit=2, page=2).json()
    assert [o["id"] for o in page2["data"]] == [ids[0]]
    assert page2["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}


def test_my_orders_shows_state_changes_at_once(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    a = _hold(api, token, event, 1)["id"]
    b = _hold(api, token, event, 1)["id"]
    assert _confirm(api, token, a).status_code == 200
    assert _cancel(api, token, b).status_code == 200
    states = {
        o["id"]: o["estado"] for o in _get(api, "/api/orders/my-orders", token).json()["data"]
    }
    assert states == {a: "CONFIRMED", b: "CANCELLED"}


def test_my_orders_unauthenticated_is_401_and_bad_paging_422(api: ApiServer) -> None:
    _problem(_get(api, "/api/orders/my-orders", None), 401)
    token = api.tokens["COMPRADOR"]
    assert "limit" in _fields(_problem(_get(api, "/api/orders/my-orders", token, limit=0), 422))


def test_get_order_owner_and_admin_200_others_404(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    order = _hold(api, token, event, 2)
    r = _get(api, f"/api/orders/{order['id']}", token)
    assert r.status_code == 200, r.text
    assert r.json() == order
    admin = _get(api, f"/api/orders/{order['id']}", api.tokens["ADMIN"])
    assert admin.status_code == 200 and admin.json()["id"] == order["id"]
    other, _ = register(api, _email("snoop"))
    body = _problem(_get(api, f"/api/orders/{order['id']}", other), 404)
    unknown = _problem(_get(api, f"/api/orders/{event['id']}.ffffffffffffffff", token), 404)
    assert body["detail"] == unknown["detail"]  # no hint that the order exists
    # the event's organizer is not the order's owner either
    _problem(_get(api, f"/api/orders/{order['id']}", api.tokens["ORGANIZADOR"]), 404)
    _problem(_get(api, f"/api/orders/{order['id']}", None), 401)


# -- confirm -----------------------------------------------------------------------------


def test_confirm_is_200_confirmed_and_idempotent_per_transaction(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    cat = event["categorias"][0]["id"]
    order = _hold(api, token, event, 2)
    r = _confirm(api, token, order["id"], tx="txn_abc", method="credit_card")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["id"] == order["id"]
    assert done["estado"] == "CONFIRMED"
    assert done["metodoPago"] == "credit_card"
    assert done["transactionId"] == "txn_abc"
    assert done["confirmadoEn"].endswith("Z")
    assert _ts(done["confirmadoEn"]) >= _ts(done["creadoEn"])
    assert _stock(api, event["id"])[cat] == 18
    again = _confirm(api, token, order["id"], tx="txn_abc", method="credit_card")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == order["id"]
    assert again.json()["estado"] == "CONFIRMED"
    assert again.json()["confirmadoEn"] == done["confirmadoEn"]
    _problem(_confirm(api, token, order["id"], tx="txn_other"), 409)
    got = _get(api, f"/api/orders/{order['id']}", token).json()
    assert got["estado"] == "CONFIRMED" and got["transactionId"] == "txn_abc"
    assert _stock(api, event["id"])[cat] == 18


def test_confirm_by_admin_is_allowed(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    order = _hold(api, buyer[0], event, 1)
    r = _confirm(api, api.tokens["ADMIN"], order["id"])
    assert r.status_code == 200, r.text
    assert r.json()["estado"] == "CONFIRMED"


def test_confirm_someone_elses_order_is_404(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    order = _hold(api, buyer[0], event, 1)
    other, _ = register(api, _email("thief"))
    _problem(_confirm(api, other, order["id"]), 404)
    _problem(_confirm(api, None, order["id"]), 401)
    assert _get(api, f"/api/orders/{order['id']}", buyer[0]).json()["estado"] == "RESERVED"


def test_confirm_unknown_order_is_404(api: ApiServer, event: dict[str, Any]) -> None:
    r = _confirm(api, api.tokens["COMPRADOR"], f"{event['id']}.ffffffffffffffff")
    _problem(r, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metodoPago": "card"}, "transactionId"),
        ({"metodoPago": "", "transactionId": "t"}, "metodoPago"),
        ({"metodoPago": "card", "transactionId": 5}, "transactionId"),
        ({"metodoPago": "card", "transactionId": "t" * 129}, "transactionId"),
    ],
)
def test_confirm_invalid_body_is_422(
    api: ApiServer,
    buyer: tuple[str, dict[str, Any]],
    event: dict[str, Any],
    body: dict[str, Any],
    field: str,
) -> None:
    order = _hold(api, buyer[0], event, 1)
    problem = _problem(_put(api, f"/api/orders/{order['id']}/confirm", buyer[0], body), 422)
    assert field in _fields(problem), problem
    assert _get(api, f"/api/orders/{order['id']}", buyer[0]).json()["estado"] == "RESERVED"


# -- cancel ------------------------------------------------------------------------------


def test_cancel_returns_stock_at_once_and_blocks_confirm(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    token = buyer[0]
    vip, gen = (c["id"] for c in event["categorias"])
    r = _order(api, token, event["id"], [(vip, 3), (gen, 4)])
    order = r.json()
    assert _stock(api, event["id"]) == {vip: 17, gen: 26}
    c = _cancel(api, token, order["id"])
    assert c.status_code == 200, c.text
    assert c.json()["estado"] == "CANCELLED"
    assert c.json()["id"] == order["id"]
    assert _stock(api, event["id"]) == {vip: 20, gen: 30}
    assert _get(api, f"/api/orders/{order['id']}", token).json()["estado"] == "CANCELLED"
    body = _problem(_confirm(api, token, order["id"]), 409)
    assert body.get("estado") in (None, "CANCELLED")
    # a second cancel never returns the stock twice
    again = _cancel(api, token, order["id"])
    assert again.status_code in (200, 409), again.text
    assert _stock(api, event["id"]) == {vip: 20, gen: 30}


def test_cancel_confirmed_order_is_409(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    order = _hold(api, buyer[0], event, 2)
    assert _confirm(api, buyer[0], order["id"]).status_code == 200
    _problem(_cancel(api, buyer[0], order["id"]), 409)
    assert _stock(api, event["id"])[event["categorias"][0]["id"]] == 18
    assert _get(api, f"/api/orders/{order['id']}", buyer[0]).json()["estado"] == "CONFIRMED"


def test_cancel_someone_elses_order_is_404(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    order = _hold(api, buyer[0], event, 2)
    other, _ = register(api, _email("vandal"))
    _problem(_cancel(api, other, order["id"]), 404)
    _problem(_cancel(api, api.tokens["ORGANIZADOR"], order["id"]), 404)
    _problem(_cancel(api, None, order["id"]), 401)
    assert _stock(api, event["id"])[event["categorias"][0]["id"]] == 18
    assert _get(api, f"/api/orders/{order['id']}", buyer[0]).json()["estado"] == "RESERVED"


def test_cancel_by_admin_is_allowed(
    api: ApiServer, buyer: tuple[str, dict[str, Any]], event: dict[str, Any]
) -> None:
    order = _hold(api, buyer[0], event, 2)
    r = _cancel(api, api.tokens["ADMIN"], order["id"])
    assert r.status_code == 200, r.text
    assert r.json()["estado"] == "CANCELLED"
    assert _stock(api, event["id"])[event["categorias"][0]["id"]] == 20


# -- expiry ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_api(api_factory: Callable[..., ApiServer]) -> ApiServer:
    """A second server whose holds last 1.2 s."""
    return api_factory(ORDER_RESERVATION_TIMEOUT_MINUTES="0.02")


def test_hold_expires_through_the_api(short_api: ApiServer) -> None:
    org, _ = register(short_api, _email("org"), role="ORGANIZADOR")
    token, _ = register(short_api, _email("buyer"))
    event = create_event(short_api, org, [("A", 10, 10), ("B", 5, 10)])
    a, b = (c["id"] for c in event["categorias"])
    r = _order(short_api, token, event["id"], [(a, 3), (b, 1)])
    assert r.status_code == 201, r.text
    order = r.json()
    assert abs((_ts(order["expiraEn"]) - _ts(order["creadoEn"])) - 1.2) <= 0.2
    assert _stock(short_api, event["id"]) == {a: 7, b: 9}

    def expired() -> bool:
        got = _get(short_api, f"/api/orders/{order['id']}", token)
        return got.status_code == 200 and got.json()["estado"] == "EXPIRED"

    assert _wait_for(expired, 10.0), _get(short_api, f"/api/orders/{order['id']}", token).text
    assert _stock(short_api, event["id"]) == {a: 10, b: 10}
    body = _problem(_confirm(short_api, token, order["id"]), 409)
    assert body.get("estado") in (None, "EXPIRED")
    assert _stock(short_api, event["id"]) == {a: 10, b: 10}
    mine = _get(short_api, "/api/orders/my-orders", token).json()["data"]
    assert [(o["id"], o["estado"]) for o in mine] == [(order["id"], "EXPIRED")]
    # cancelling an expired hold never gives the stock back twice
    c = _cancel(short_api, token, order["id"])
    assert c.status_code in (200, 409), c.text
    assert _stock(short_api, event["id"]) == {a: 10, b: 10}


def test_confirm_past_the_deadline_is_409_expired(short_api: ApiServer) -> None:
    org, _ = register(short_api, _email("org"), role="ORGANIZADOR")
    token, _ = register(short_api, _email("late"))
    event = create_event(short_api, org, [("A", 10, 5)])
    cat = event["categorias"][0]["id"]
    order = _hold(short_api, token, event, 2)
    deadline = _ts(order["expiraEn"])
    assert _wait_for(lambda: time.time() > deadline + 0.05, 5.0)
    body = _problem(_confirm(short_api, token, order["id"]), 409)
    assert body.get("estado") in (None, "EXPIRED")
    assert _wait_for(lambda: _stock(short_api, event["id"]) == {cat: 5}, 5.0)
    got = _get(short_api, f"/api/orders/{order['id']}", token).json()
    assert got["estado"] == "EXPIRED"
