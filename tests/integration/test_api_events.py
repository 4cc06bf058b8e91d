"""Events and ticket categories through real HTTP: public reads with live stock, search,
pagination, owner-guarded writes, sale closing, deletion with holds, category resizing."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, create_event, register
from tests.integration.conftest import bearer as _auth
from tests.integration.conftest import expect_problem as _problem
from tests.integration.conftest import problem_fields as _fields
from tests.integration.conftest import unique_email as _email


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _get(api: ApiServer, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"{api.url}{path}", params=params, headers=_auth(token), timeout=30)


def _send(
    api: ApiServer, method: str, path: str, token: str | None, body: Any = None, **params: Any
) -> httpx.Response:
    return httpx.request(
        method, f"{api.url}{path}", json=body, params=params, headers=_auth(token), timeout=30
    )


def _event_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "nombre": "Festival",
        "descripcion": "desc",
        "fecha": "2027-07-01T20:00:00Z",
        "ubicacion": "Madrid Arena",
        "capacidadTotal": 300,
        "precioBase": 20,
        "categorias": [
            {"nombre": "VIP", "precio": 100, "cantidadTotal": 100, "beneficios": ["Bar"]},
            {"nombre": "General", "precio": 20, "cantidadTotal": 200, "beneficios": []},
        ],
    }
    body.update(over)
    return body


def _hold(api: ApiServer, token: str, event: dict[str, Any], qty: int, cat: int = 0) -> dict:
    r = _send(
        api,
        "POST",
        "/api/orders",
        token,
        {
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][cat]["id"], "cantidad": qty}],
        },
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def _confirm(api: ApiServer, token: str, order: dict[str, Any]) -> None:
    r = _send(
        api,
        "PUT",
        f"/api/orders/{order['id']}/confirm",
        token,
        {"metodoPago": "card", "transactionId": f"tx-{_tag()}"},
    )
    assert r.status_code == 200, r.text


def _event(api: ApiServer, event_id: str) -> dict[str, Any]:
    r = _get(api, f"/api/events/{event_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _cat(event: dict[str, Any], category_id: str) -> dict[str, Any]:
    return next(c for c in event["categorias"] if c["id"] == category_id)


@pytest.fixture(scope="module")
def buyer(api: ApiServer) -> str:
    return register(api, _email("buyer"))[0]


@pytest.fixture(scope="module")
def other_org(api: ApiServer) -> str:
    return register(api, _email("org2"), role="ORGANIZADOR")[0]


# -- list and get ------------------------------------------------------------------------


def test_list_is_public_and_paginated(api: ApiServer) -> None:
    r = _get(api, "/api/events")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"data", "pagination"}
    assert set(body["pagination"]) == {"page", "limit", "total", "totalPages"}
    assert body["pagination"]["page"] == 1
    assert body["pagination"]["limit"] == 20
    assert body["pagination"]["total"] >= 2  # the seeded events
    names = {e["nombre"] for e in _get(api, "/api/events", limit=100).json()["data"]}
    assert {"Rock Concert", "Tech Conference"} <= names


def test_list_pages_do_not_overlap_and_count_is_right(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    before = _get(api, "/api/events", limit=1).json()["pagination"]["total"]
    for _ in range(3):
        create_event(api, org, [("A", 1, 5)])
    first = _get(api, "/api/events", limit=2, page=1).json()
    second = _get(api, "/api/events", limit=2, page=2).json()
    total = first["pagination"]["total"]
    assert total == before + 3
    assert first["pagination"] == {
        "page": 1,
        "limit": 2,
        "total": total,
        "totalPages": (total + 1) // 2,
    }
    assert second["pagination"]["page"] == 2
    assert len(first["data"]) == 2 and len(second["data"]) == 2
    assert not {e["id"] for e in first["data"]} & {e["id"] for e in second["data"]}
    beyond = _get(api, "/api/events", limit=2, page=total + 1).json()
    assert beyond["data"] == []
    assert beyond["pagination"]["total"] == total


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"page": 0}, "page"),
        ({"page": "abc"}, "page"),
    ],
)
def test_list_bad_paging_is_422(api: ApiServer, params: dict[str, Any], field: str) -> None:
    body = _problem(_get(api, "/api/events", **params), 422)
    assert field in _fields(body)


def test_get_event_is_public_with_categories_and_live_stock(api: ApiServer) -> None:
    created = create_event(api, api.tokens["ORGANIZADOR"], [("VIP", 99.5, 10), ("Pista", 30, 40)])
    event = _event(api, created["id"])
    assert event["id"] == created["id"]
    for key in (
        "nombre",
        "descripcion",
        "fecha",
        "ubicacion",
        "capacidadTotal",
        "precioBase",
        "organizadorId",
        "categorias",
        "disponible",
        "enVenta",
        "creadoEn",
    ):
        assert key in event, key
    assert event["disponible"] == 50
    assert event["enVenta"] is True
    assert [c["nombre"] for c in event["categorias"]] == ["VIP", "Pista"]
    for c in event["categorias"]:
        assert set(c) >= {"id", "nombre", "precio", "cantidadTotal", "beneficios", "disponible"}
        assert c["disponible"] == c["cantidadTotal"]
    assert event["categorias"][0]["precio"] == 99.5


def test_get_unknown_event_is_404(api: ApiServer) -> None:
    _problem(_get(api, "/api/events/ffffffffffffffffffffffff"), 404)


def test_live_disponible_drops_after_a_hold_and_returns_after_cancel(
    api: ApiServer, buyer: str
) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 20), ("B", 5, 30)])
    order = _hold(api, buyer, event, 3, cat=1)
    live = _event(api, event["id"])
    assert live["disponible"] == 47
    assert _cat(live, event["categorias"][1]["id"])["disponible"] == 27
    assert _cat(live, event["categorias"][0]["id"])["disponible"] == 20
    cats = _get(api, f"/api/events/{event['id']}/categories").json()
    assert {c["id"]: c["disponible"] for c in cats}[event["categorias"][1]["id"]] == 27
    listed = _get(api, "/api/events/search", ubicacion=live["ubicacion"], limit=100).json()
    assert any(e["id"] == event["id"] and e["disponible"] == 47 for e in listed["data"])
    r = _send(api, "PUT", f"/api/orders/{order['id']}/cancel", buyer)
    assert r.status_code == 200, r.text
    assert _event(api, event["id"])["disponible"] == 50


# -- create ------------------------------------------------------------------------------


def test_create_event_as_organizer_returns_201_with_category_ids(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    me = _get(api, "/api/auth/profile", org).json()
    r = _send(api, "POST", "/api/events", org, _event_body(nombre="Creado"))
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["nombre"] == "Creado"
    assert event["organizadorId"] == me["id"]
    assert event["capacidadTotal"] == 300
    assert event["fecha"].startswith("2027-07-01T20:00:00")
    ids = [c["id"] for c in event["categorias"]]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert event["categorias"][0]["beneficios"] == ["Bar"]
    assert _event(api, event["id"])["nombre"] == "Creado"


def test_create_event_as_admin_is_allowed(api: ApiServer) -> None:
    r = _send(api, "POST", "/api/events", api.tokens["ADMIN"], _event_body())
    assert r.status_code == 201, r.text


def test_create_event_unauthenticated_is_401(api: ApiServer) -> None:
    _problem(_send(api, "POST", "/api/events", None, _event_body()), 401)


def test_create_event_as_buyer_is_403(api: ApiServer, buyer: str) -> None:
    _problem(_send(api, "POST", "/api/events", buyer, _event_body()), 403)


def test_create_event_categories_over_capacity_is_422(api: ApiServer) -> None:
    body = _event_body(capacidadTotal=299)
    problem = _problem(_send(api, "POST", "/api/events", api.tokens["ORGANIZADOR"], body), 422)
    assert _fields(problem), problem
    assert "capacidadTotal" in _fields(problem) or "categorias" in _fields(problem)


def test_create_event_categories_exactly_at_capacity_is_201(api: ApiServer) -> None:
    r = _send(
        api, "POST", "/api/events", api.tokens["ORGANIZADOR"], _event_body(capacidadTotal=300)
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"fecha": "not-a-date"}, "fecha"),
        ({"capacidadTotal": -1}, "capacidadTotal"),
        ({"capacidadTotal": "mil"}, "capacidadTotal"),
        ({"precioBase": -5}, "precioBase"),
        ({"nombre": ""}, "nombre"),
        ({"ubicacion": 7}, "ubicacion"),
        (
            {"categorias": [{"nombre": "X", "precio": -1, "cantidadTotal": 1, "beneficios": []}]},
            "categorias[0].precio",
        ),
        (
            {"categorias": [{"nombre": "X", "precio": 1, "cantidadTotal": 1.5}]},
            "categorias[0].cantidadTotal",
        ),
    ],
)
def test_create_event_invalid_field_is_422_naming_it(
    api: ApiServer, over: dict[str, Any], field: str
) -> None:
    body = _event_body(**over)
    problem = _problem(_send(api, "POST", "/api/events", api.tokens["ORGANIZADOR"], body), 422)
    assert field in _fields(problem), problem


def test_create_event_missing_field_is_422_naming_it(api: ApiServer) -> None:
    body = _event_body()
    del body["ubicacion"]
    problem = _problem(_send(api, "POST", "/api/events", api.tokens["ORGANIZADOR"], body), 422)
    assert "ubicacion" in _fields(problem), problem


# -- search ------------------------------------------------------------------------------


def _random_day() -> date:
    return date(2040, 1, 1) + timedelta(days=random.randrange(3000))


def test_search_by_fecha_matches_the_utc_day(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    day = _random_day()
    late = create_event(api, org, [("A", 1, 5)], fecha=f"{day.isoformat()}T23:30:00Z")
    early = create_event(api, org, [("A", 1, 5)], fecha=f"{day.isoformat()}T00:00:00Z")
    next_day = create_event(api, org, [("A", 1, 5)], fecha=f"{day + timedelta(days=1)}T00:00:00Z")
    r = _get(api, "/api/events/search", fecha=day.isoformat(), limit=100)
    assert r.status_code == 200, r.text
    found = {e["id"] for e in r.json()["data"]}
    assert {late["id"], early["id"]} <= found
    assert next_day["id"] not in found
    assert all(e["fecha"].startswith(day.isoformat()) for e in r.json()["data"])
    assert r.json()["pagination"]["total"] == len(found)


def test_search_by_ubicacion_is_case_insensitive_substring(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    tag = _tag()
    madrid = create_event(api, org, [("A", 1, 5)], ubicacion=f"Sala {tag} Madrid Centro")
    sevilla = create_event(api, org, [("A", 1, 5)], ubicacion=f"Teatro {tag} Sevilla")
    r = _get(api, "/api/events/search", ubicacion=f"{tag.upper()} MADRID")
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()["data"]] == [madrid["id"]]
    both = _get(api, "/api/events/search", ubicacion=tag.upper()).json()
    assert {e["id"] for e in both["data"]} == {madrid["id"], sevilla["id"]}
    assert both["pagination"]["total"] == 2
    none = _get(api, "/api/events/search", ubicacion=f"{tag} Bilbao").json()
    assert none["data"] == [] and none["pagination"]["total"] == 0


def test_search_by_disponible_filters_live_stock(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    tag = _tag()
    sold_out = create_event(api, org, [("Solo", 10, 2)], ubicacion=f"Sala {tag}")
    open_ = create_event(api, org, [("Mucho", 10, 50)], ubicacion=f"Sala {tag}")
    _hold(api, buyer, sold_out, 2)
    assert _event(api, sold_out["id"])["disponible"] == 0
    yes = _get(api, "/api/events/search", ubicacion=tag, disponible="true")
    assert yes.status_code == 200, yes.text
    assert [e["id"] for e in yes.json()["data"]] == [open_["id"]]
    assert yes.json()["pagination"]["total"] == 1
    no = _get(api, "/api/events/search", ubicacion=tag, disponible="false").json()
    assert [e["id"] for e in no["data"]] == [sold_out["id"]]
    assert no["pagination"]["total"] == 1
    both = _get(api, "/api/events/search", ubicacion=tag).json()
    assert both["pagination"]["total"] == 2


def test_search_combines_filters_and_paginates(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    tag = _tag()
    day = _random_day()
    ids = {
        create_event(api, org, [("A", 1, 5)], ubicacion=f"Pab {tag}", fecha=f"{day}T18:00:00Z")[
            "id"
        ]
        for _ in range(3)
    }
    create_event(
        api, org, [("A", 1, 5)], ubicacion=f"Pab {tag}", fecha=f"{day}T18:00:00Z", capacity=5
    )
    other_day = create_event(
        api,
        org,
        [("A", 1, 5)],
        ubicacion=f"Pab {tag}",
        fecha=f"{day + timedelta(days=2)}T18:00:00Z",
    )
    p1 = _get(api, "/api/events/search", ubicacion=tag, fecha=str(day), limit=3, page=1).json()
    p2 = _get(api, "/api/events/search", ubicacion=tag, fecha=str(day), limit=3, page=2).json()
    assert p1["pagination"] == {"page": 1, "limit": 3, "total": 4, "totalPages": 2}
    assert p2["pagination"]["page"] == 2
    got = [e["id"] for e in p1["data"] + p2["data"]]
    assert len(got) == 4 and len(set(got)) == 4
    assert ids <= set(got)
    assert other_day["id"] not in got
    # the disponible filter paginates too
    d1 = _get(api, "/api/events/search", ubicacion=tag, disponible="true", limit=2).json()
    assert d1["pagination"] == {"page": 1, "limit": 2, "total": 5, "totalPages": 3}
    assert len(d1["data"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"fecha": "2024-13-45"}, "fecha"),
        ({"fecha": "yesterday"}, "fecha"),
        ({"disponible": "maybe"}, "disponible"),
    ],
)
def test_search_bad_query_is_422(api: ApiServer, params: dict[str, Any], field: str) -> None:
    problem = _problem(_get(api, "/api/events/search", **params), 422)
    assert field in _fields(problem), problem


@pytest.mark.parametrize("pattern", ["%", "_", "%%", ".*"])
def test_search_ubicacion_has_no_wildcards(api: ApiServer, pattern: str) -> None:
    create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)], ubicacion=f"Plaza {_tag()}")
    r = _get(api, "/api/events/search", ubicacion=pattern)
    assert r.status_code == 200, r.text
    assert all(pattern in e["ubicacion"] for e in r.json()["data"]), r.json()["data"][:2]


def test_search_is_not_taken_for_an_event_id(api: ApiServer) -> None:
    r = _get(api, "/api/events/search")
    assert r.status_code == 200, r.text
    assert "data" in r.json()


# -- update ------------------------------------------------------------------------------


def test_update_by_owner_changes_fields(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)], capacity=10)
    r = _send(
        api,
        "PUT",
        f"/api/events/{event['id']}",
        org,
        {"nombre": "Renamed", "ubicacion": "Bilbao", "capacidadTotal": 20},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["nombre"] == "Renamed"
    assert body["ubicacion"] == "Bilbao"
    assert body["capacidadTotal"] == 20
    assert body["descripcion"] == event["descripcion"]
    assert body["actualizadoEn"] >= event["actualizadoEn"]
    again = _event(api, event["id"])
    assert again["nombre"] == "Renamed" and again["ubicacion"] == "Bilbao"


def test_update_by_admin_is_allowed(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    r = _send(api, "PUT", f"/api/events/{event['id']}", api.tokens["ADMIN"], {"nombre": "ByAdmin"})
    assert r.status_code == 200, r.text
    assert r.json()["nombre"] == "ByAdmin"


def test_update_by_another_organizer_is_403(api: ApiServer, other_org: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    _problem(_send(api, "PUT", f"/api/events/{event['id']}", other_org, {"nombre": "Mine"}), 403)
    assert _event(api, event["id"])["nombre"] == event["nombre"]


def test_update_by_buyer_is_403(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    _problem(_send(api, "PUT", f"/api/events/{event['id']}", buyer, {"nombre": "Mine"}), 403)


def test_update_unauthenticated_is_401(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    _problem(_send(api, "PUT", f"/api/events/{event['id']}", None, {"nombre": "x"}), 401)


def test_update_unknown_event_is_404(api: ApiServer) -> None:
    r = _send(
        api, "PUT", "/api/events/ffffffffffffffffffffffff", api.tokens["ADMIN"], {"nombre": "x"}
    )
    _problem(r, 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"capacidadTotal": "x"}, "capacidadTotal"),
        ({"enVenta": "nope"}, "enVenta"),
        ({"fecha": "31/12/2024"}, "fecha"),
    ],
)
def test_update_invalid_field_is_422(api: ApiServer, body: dict[str, Any], field: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    problem = _problem(
        _send(api, "PUT", f"/api/events/{event['id']}", api.tokens["ORGANIZADOR"], body), 422
    )
    assert field in _fields(problem), problem


def test_update_capacity_below_categories_is_422(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5), ("B", 1, 5)])
    _problem(_send(api, "PUT", f"/api/events/{event['id']}", org, {"capacidadTotal": 9}), 422)
    assert _event(api, event["id"])["capacidadTotal"] == 10


def test_update_en_venta_false_closes_the_sale(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)])
    r = _send(api, "PUT", f"/api/events/{event['id']}", org, {"enVenta": False})
    assert r.status_code == 200, r.text
    assert r.json()["enVenta"] is False
    assert _event(api, event["id"])["enVenta"] is False
    order = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    _problem(_send(api, "POST", "/api/orders", buyer, order), 409)
    assert _event(api, event["id"])["disponible"] == 5
    # and reopening it sells again
    r = _send(api, "PUT", f"/api/events/{event['id']}", org, {"enVenta": True})
    assert r.status_code == 200 and r.json()["enVenta"] is True
    assert _send(api, "POST", "/api/orders", buyer, order).status_code == 201


# -- delete ------------------------------------------------------------------------------


def test_delete_by_admin_is_204_and_event_is_gone(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    r = _send(api, "DELETE", f"/api/events/{event['id']}", api.tokens["ADMIN"])
    assert r.status_code == 204, r.text
    assert r.content == b""
    _problem(_get(api, f"/api/events/{event['id']}"), 404)
    _problem(_get(api, f"/api/events/{event['id']}/categories"), 404)
    listed = _get(api, "/api/events/search", ubicacion=event["ubicacion"], limit=100).json()
    assert event["id"] not in {e["id"] for e in listed["data"]}
    order = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    r = _send(api, "POST", "/api/orders", api.tokens["COMPRADOR"], order)
    _problem(r, (404, 409))


def test_delete_by_owner_organizer_is_403(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    _problem(_send(api, "DELETE", f"/api/events/{event['id']}", api.tokens["ORGANIZADOR"]), 403)
    assert _event(api, event["id"])["id"] == event["id"]


def test_delete_by_buyer_is_403_and_unauthenticated_is_401(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    _problem(_send(api, "DELETE", f"/api/events/{event['id']}", buyer), 403)
    _problem(_send(api, "DELETE", f"/api/events/{event['id']}", None), 401)
    assert _event(api, event["id"])["id"] == event["id"]


def test_delete_unknown_event_is_404(api: ApiServer) -> None:
    r = _send(api, "DELETE", "/api/events/ffffffffffffffffffffffff", api.tokens["ADMIN"])
    _problem(r, 404)


def test_delete_with_live_holds_is_409_unless_forced(api: ApiServer, buyer: str) -> None:
    admin = api.tokens["ADMIN"]
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 10), ("B", 2, 10)])
    first = _hold(api, buyer, event, 2)
    second = _hold(api, buyer, event, 3, cat=1)
    _problem(_send(api, "DELETE", f"/api/events/{event['id']}", admin), 409)
    assert _event(api, event["id"])["disponible"] == 15  # untouched
    r = _send(api, "DELETE", f"/api/events/{event['id']}", admin, force="true")
    assert r.status_code == 204, r.text
    _problem(_get(api, f"/api/events/{event['id']}"), 404)
    for order in (first, second):
        got = _get(api, f"/api/orders/{order['id']}", buyer)
        assert got.status_code == 200, got.text
        assert got.json()["estado"] == "CANCELLED"
    mine = {
        o["id"]: o["estado"]
        for o in _get(api, "/api/orders/my-orders", buyer, limit=100).json()["data"]
    }
    assert mine.get(first["id"]) == "CANCELLED"
    assert mine.get(second["id"]) == "CANCELLED"


def test_delete_with_confirmed_orders_is_409(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 10)])
    _confirm(api, buyer, _hold(api, buyer, event, 1))
    body = _problem(_send(api, "DELETE", f"/api/events/{event['id']}", api.tokens["ADMIN"]), 409)
    assert "force" in body["detail"]
    assert _event(api, event["id"])["id"] == event["id"]


# -- categories --------------------------------------------------------------------------


def test_list_categories_is_public(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5), ("B", 2, 6)])
    r = _get(api, f"/api/events/{event['id']}/categories")
    assert r.status_code == 200, r.text
    cats = r.json()
    assert [c["id"] for c in cats] == [c["id"] for c in event["categorias"]]
    assert [c["disponible"] for c in cats] == [5, 6]


def test_list_categories_of_unknown_event_is_404(api: ApiServer) -> None:
    _problem(_get(api, "/api/events/ffffffffffffffffffffffff/categories"), 404)


def test_create_category_by_owner_is_201_and_sells(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)], capacity=50)
    r = _send(
        api,
        "POST",
        f"/api/events/{event['id']}/categories",
        org,
        {"nombre": "Palco", "precio": 75, "cantidadTotal": 8, "beneficios": ["Cava"]},
    )
    assert r.status_code == 201, r.text
    cat = r.json()
    assert cat["nombre"] == "Palco" and cat["precio"] == 75
    assert cat["cantidadTotal"] == 8 and cat["disponible"] == 8
    assert cat["beneficios"] == ["Cava"]
    live = _event(api, event["id"])
    assert _cat(live, cat["id"])["disponible"] == 8
    assert live["disponible"] == 13
    order = _send(
        api,
        "POST",
        "/api/orders",
        buyer,
        {"eventoId": event["id"], "tickets": [{"categoriaId": cat["id"], "cantidad": 2}]},
    )
    assert order.status_code == 201, order.text
    assert order.json()["tickets"][0]["precioUnitario"] == 75


def test_create_category_by_admin_is_201(api: ApiServer) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)], capacity=50)
    r = _send(
        api,
        "POST",
        f"/api/events/{event['id']}/categories",
        api.tokens["ADMIN"],
        {"nombre": "X", "precio": 1, "cantidadTotal": 1},
    )
    assert r.status_code == 201, r.text


def test_create_category_over_capacity_is_422(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)], capacity=10)
    r = _send(
        api,
        "POST",
        f"/api/events/{event['id']}/categories",
        org,
        {"nombre": "Big", "precio": 1, "cantidadTotal": 6},
    )
    _problem(r, 422)
    assert len(_event(api, event["id"])["categorias"]) == 1


def test_create_category_not_owner_is_403_and_anonymous_401(
    api: ApiServer, other_org: str, buyer: str
) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)], capacity=50)
    body = {"nombre": "X", "precio": 1, "cantidadTotal": 1}
    path = f"/api/events/{event['id']}/categories"
    _problem(_send(api, "POST", path, other_org, body), 403)
    _problem(_send(api, "POST", path, buyer, body), 403)
    _problem(_send(api, "POST", path, None, body), 401)
    assert len(_event(api, event["id"])["categorias"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nombre": "X", "precio": -1, "cantidadTotal": 1}, "precio"),
        ({"nombre": "X", "precio": 1, "cantidadTotal": -1}, "cantidadTotal"),
        ({"nombre": "X", "precio": 1, "cantidadTotal": "uno"}, "cantidadTotal"),
        ({"nombre": "", "precio": 1, "cantidadTotal": 1}, "nombre"),
        ({"precio": 1, "cantidadTotal": 1}, "nombre"),
    ],
)
def test_create_category_invalid_is_422(api: ApiServer, body: dict[str, Any], field: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)], capacity=50)
    r = _send(api, "POST", f"/api/events/{event['id']}/categories", api.tokens["ORGANIZADOR"], body)
    problem = _problem(r, 422)
    assert field in _fields(problem), problem


def test_create_category_on_unknown_event_is_404(api: ApiServer) -> None:
    r = _send(
        api,
        "POST",
        "/api/events/ffffffffffffffffffffffff/categories",
        api.tokens["ADMIN"],
        {"nombre": "X", "precio": 1, "cantidadTotal": 1},
    )
    _problem(r, 404)


def test_raising_cantidad_total_raises_disponible(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 5)], capacity=100)
    cat_id = event["categorias"][0]["id"]
    _hold(api, buyer, event, 2)
    r = _send(
        api, "PUT", f"/api/events/{event['id']}/categories/{cat_id}", org, {"cantidadTotal": 8}
    )
    assert r.status_code == 200, r.text
    assert r.json()["cantidadTotal"] == 8
    assert r.json()["disponible"] == 6
    live = _cat(_event(api, event["id"]), cat_id)
    assert live["cantidadTotal"] == 8 and live["disponible"] == 6


def test_lowering_cantidad_total_below_held_and_sold_is_409(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10)])
    cat_id = event["categorias"][0]["id"]
    _hold(api, buyer, event, 3)
    _confirm(api, buyer, _hold(api, buyer, event, 2))
    path = f"/api/events/{event['id']}/categories/{cat_id}"
    _problem(_send(api, "PUT", path, org, {"cantidadTotal": 4}), 409)
    live = _cat(_event(api, event["id"]), cat_id)
    assert live["cantidadTotal"] == 10 and live["disponible"] == 5
    r = _send(api, "PUT", path, org, {"cantidadTotal": 5})
    assert r.status_code == 200, r.text
    assert r.json()["disponible"] == 0
    assert _cat(_event(api, event["id"]), cat_id)["disponible"] == 0


def test_update_category_other_fields(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10)])
    cat_id = event["categorias"][0]["id"]
    r = _send(
        api,
        "PUT",
        f"/api/events/{event['id']}/categories/{cat_id}",
        org,
        {"nombre": "Renombrada", "precio": 12.5, "beneficios": ["x"]},
    )
    assert r.status_code == 200, r.text
    got = _cat(_event(api, event["id"]), cat_id)
    assert got["nombre"] == "Renombrada" and got["precio"] == 12.5 and got["beneficios"] == ["x"]
    assert got["cantidadTotal"] == 10 and got["disponible"] == 10
    # new orders are priced and named from the updated category
    order = _hold(api, buyer, event, 2)
    assert order["tickets"][0]["precioUnitario"] == 12.5
    assert order["tickets"][0]["nombre"] == "Renombrada"
    assert order["total"] == 25


def test_update_category_not_owner_403_anonymous_401_unknown_404(
    api: ApiServer, other_org: str, buyer: str
) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10)])
    path = f"/api/events/{event['id']}/categories/{event['categorias'][0]['id']}"
    _problem(_send(api, "PUT", path, other_org, {"cantidadTotal": 1}), 403)
    _problem(_send(api, "PUT", path, buyer, {"cantidadTotal": 1}), 403)
    _problem(_send(api, "PUT", path, None, {"cantidadTotal": 1}), 401)
    missing = f"/api/events/{event['id']}/categories/ffffffffffffffffffffffff"
    _problem(_send(api, "PUT", missing, org, {"cantidadTotal": 1}), 404)
    problem = _problem(_send(api, "PUT", path, org, {"cantidadTotal": -3}), 422)
    assert "cantidadTotal" in _fields(problem)
    assert _cat(_event(api, event["id"]), event["categorias"][0]["id"])["cantidadTotal"] == 10


def test_delete_category_with_holds_is_409(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10), ("B", 5, 10)])
    held = event["categorias"][0]["id"]
    _hold(api, buyer, event, 1)
    _problem(_send(api, "DELETE", f"/api/events/{event['id']}/categories/{held}", org), 409)
    assert held in {c["id"] for c in _event(api, event["id"])["categorias"]}


def test_delete_free_category_is_204(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10), ("B", 5, 10)])
    free = event["categorias"][1]["id"]
    r = _send(api, "DELETE", f"/api/events/{event['id']}/categories/{free}", org)
    assert r.status_code == 204, r.text
    live = _event(api, event["id"])
    assert [c["id"] for c in live["categorias"]] == [event["categorias"][0]["id"]]
    assert live["disponible"] == 10
    r = _send(
        api,
        "POST",
        "/api/orders",
        buyer,
        {"eventoId": event["id"], "tickets": [{"categoriaId": free, "cantidad": 1}]},
    )
    assert r.status_code in (404, 409), r.text


def test_delete_category_not_owner_403_anonymous_401_unknown_404(
    api: ApiServer, other_org: str, buyer: str
) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 10, 10)])
    path = f"/api/events/{event['id']}/categories/{event['categorias'][0]['id']}"
    _problem(_send(api, "DELETE", path, other_org), 403)
    _problem(_send(api, "DELETE", path, buyer), 403)
    _problem(_send(api, "DELETE", path, None), 401)
    missing = f"/api/events/{event['id']}/categories/ffffffffffffffffffffffff"
    _problem(_send(api, "DELETE", missing, org), 404)
    assert len(_event(api, event["id"])["categorias"]) == 1


def test_concurrent_category_edits_keep_store_and_live_stock_in_step(api: ApiServer) -> None:
    """Read-modify-write of an event's document runs under the event's edit lock: no edit
    is lost, and the stored totals equal the live ones."""
    from concurrent.futures import ThreadPoolExecutor

    org = register(api, f"lock-org-{uuid.uuid4().hex[:8]}@example.com", role="ORGANIZADOR")[0]
    event = create_event(api, org, [("A", 1.0, 100), ("B", 1.0, 100)], capacity=10_000)
    ids = [c["id"] for c in event["categorias"]]

    def resize(i: int) -> int:
        cat = ids[i % 2]
        r = httpx.put(
            f"{api.url}/api/events/{event['id']}/categories/{cat}",
            json={"cantidadTotal": 100 + i},
            headers={"Authorization": f"Bearer {org}"},
            timeout=60,
        )
        return r.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(resize, range(40)))
    assert statuses == [200] * 40
    sales = httpx.get(
        f"{api.url}/api/admin/events/{event['id']}/sales",
        headers={"Authorization": f"Bearer {org}"},
    ).json()
    live = {c["categoriaId"]: (c["total"], c["disponibles"]) for c in sales["categorias"]}
    for cat in ids:
        assert live[cat][0] == live[cat][1]  # nothing held: available == stored total
