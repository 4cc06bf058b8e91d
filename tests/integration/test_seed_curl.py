"""The seed's curl examples (seed.md, "Usage Examples"), sent as the same HTTP requests with
exactly the seed's bodies, and its demo data ("Test Data (Seeds)"): clients written against
the original system must work unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer

JSON = {"Content-Type": "application/json"}

# The seed's bodies date from 2024; an event dated in the past is refused (422 naming
# fecha), so the same bodies are sent with the same day of a year still to come.
SEED_DAY = "2024-12-31"
DAY = f"{datetime.now(UTC).year + 1}-12-31"

REGISTER_BODY = """{
    "nombre": "John Doe",
    "email": "john@example.com",
    "password": "Pass123!",
    "role": "COMPRADOR"
  }"""

SEED_CREATE_EVENT_BODY = """{
    "nombre": "Rock Concert 2024",
    "descripcion": "The best concert of the year",
    "fecha": "2024-12-31T20:00:00Z",
    "ubicacion": "Madrid Arena",
    "capacidadTotal": 1000,
    "precioBase": 50,
    "categorias": [
      {
        "nombre": "VIP",
        "precio": 150,
        "cantidadTotal": 100,
        "beneficios": ["Backstage access", "Meet & greet"]
      },
      {
        "nombre": "General",
        "precio": 50,
        "cantidadTotal": 900,
        "beneficios": ["General admission"]
      }
    ]
  }"""
CREATE_EVENT_BODY = SEED_CREATE_EVENT_BODY.replace(SEED_DAY, DAY)

BUY_BODY = """{
    "eventoId": "EVENT_ID",
    "tickets": [
      {
        "categoriaId": "VIP_CATEGORY_ID",
        "cantidad": 2
      }
    ]
  }"""

CONFIRM_BODY = """{
    "metodoPago": "credit_card",
    "transactionId": "txn_123456"
  }"""


def _bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def walkthrough(api: ApiServer) -> dict[str, Any]:
    """The four curl calls in order; every response kept for the tests below."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=api.url, timeout=30) as http:
        out["register"] = http.post("/api/auth/register", headers=JSON, content=REGISTER_BODY)
        organizer = http.post(
            "/api/auth/login",
            headers=JSON,
            content='{"email": "organizador@test.com", "password": "Org123!"}',
        )
        assert organizer.status_code == 200, organizer.text
        out["organizer_token"] = organizer.json()["token"]
        out["event"] = http.post(
            "/api/events", headers=_bearer(out["organizer_token"]), content=CREATE_EVENT_BODY
        )
        assert out["register"].status_code == 201, out["register"].text
        assert out["event"].status_code == 201, out["event"].text
        john = out["register"].json()["token"]
        event = out["event"].json()
        vip = next(c for c in event["categorias"] if c["nombre"] == "VIP")
        buy = BUY_BODY.replace("EVENT_ID", event["id"]).replace("VIP_CATEGORY_ID", vip["id"])
        out["order"] = http.post("/api/orders", headers=_bearer(john), content=buy)
        assert out["order"].status_code == 201, out["order"].text
        order_id = out["order"].json()["id"]
        out["confirm"] = http.put(
            f"/api/orders/{order_id}/confirm", headers=_bearer(john), content=CONFIRM_BODY
        )
        out["john_token"] = john
    return out


def test_register_user(walkthrough: dict[str, Any]) -> None:
    r = walkthrough["register"]
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    assert body["token"].count(".") == 2
    user = body["user"]
    assert set(user) == {"id", "nombre", "email", "role", "creadoEn"}
    assert user["nombre"] == "John Doe"
    assert user["email"] == "john@example.com"
    assert user["role"] == "COMPRADOR"


def test_create_event(walkthrough: dict[str, Any], api: ApiServer) -> None:
    r = walkthrough["event"]
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["nombre"] == "Rock Concert 2024"
    assert event["descripcion"] == "The best concert of the year"
    assert _ts(event["fecha"]) == _ts(f"{DAY}T20:00:00Z")
    assert event["ubicacion"] == "Madrid Arena"
    assert event["capacidadTotal"] == 1000
    assert event["precioBase"] == 50
    profile = httpx.get(
        f"{api.url}/api/auth/profile", headers=_bearer(walkthrough["organizer_token"]), timeout=30
    ).json()
    assert event["organizadorId"] == profile["id"]
    cats = {c["nombre"]: c for c in event["categorias"]}
    assert set(cats) == {"VIP", "General"}
    assert cats["VIP"]["precio"] == 150 and cats["VIP"]["cantidadTotal"] == 100
    assert cats["VIP"]["beneficios"] == ["Backstage access", "Meet & greet"]
    assert cats["General"]["precio"] == 50 and cats["General"]["cantidadTotal"] == 900
    assert cats["General"]["beneficios"] == ["General admission"]
    for c in event["categorias"]:
        assert isinstance(c["id"], str) and c["id"]


def test_buy_tickets(walkthrough: dict[str, Any]) -> None:
    r = walkthrough["order"]
    assert r.status_code == 201, r.text
    order = r.json()
    event = walkthrough["event"].json()
    john = walkthrough["register"].json()["user"]
    vip = next(c for c in event["categorias"] if c["nombre"] == "VIP")
    assert order["eventoId"] == event["id"]
    assert order["usuarioId"] == john["id"]
    assert order["tickets"] == [
        {"categoriaId": vip["id"], "nombre": "VIP", "cantidad": 2, "precioUnitario": 150}
    ]
    assert order["total"] == 300
    assert order["estado"] == "RESERVED"
    assert abs(_ts(order["expiraEn"]) - _ts(order["creadoEn"]) - 600) <= 2


def test_confirm_order(walkthrough: dict[str, Any], api: ApiServer) -> None:
    r = walkthrough["confirm"]
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["id"] == walkthrough["order"].json()["id"]
    assert order["estado"] == "CONFIRMED"
    assert order["metodoPago"] == "credit_card"
    assert order["transactionId"] == "txn_123456"
    assert "confirmadoEn" in order
    event_id = walkthrough["event"].json()["id"]
    live = httpx.get(f"{api.url}/api/events/{event_id}", timeout=30).json()
    stock = {c["nombre"]: c["disponible"] for c in live["categorias"]}
    assert stock == {"VIP": 98, "General": 900}
    mine = httpx.get(
        f"{api.url}/api/orders/my-orders", headers=_bearer(walkthrough["john_token"]), timeout=30
    ).json()
    assert [(o["id"], o["estado"]) for o in mine["data"]] == [(order["id"], "CONFIRMED")]


def test_register_example_twice_is_409(walkthrough: dict[str, Any], api: ApiServer) -> None:
    assert walkthrough["register"].status_code == 201
    r = httpx.post(f"{api.url}/api/auth/register", headers=JSON, content=REGISTER_BODY, timeout=30)
    assert r.status_code == 409, r.text


def test_john_logs_in_with_the_example_password(
    walkthrough: dict[str, Any], api: ApiServer
) -> None:
    assert walkthrough["register"].status_code == 201
    r = httpx.post(
        f"{api.url}/api/auth/login",
        headers=JSON,
        content='{"email": "john@example.com", "password": "Pass123!"}',
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["nombre"] == "John Doe"


# -- the seed's demo data ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "password", "role"),
    [
        ("admin@test.com", "Admin123!", "ADMIN"),
        ("organizador@test.com", "Org123!", "ORGANIZADOR"),
        ("comprador@test.com", "User123!", "COMPRADOR"),
    ],
)
def test_seeded_users_log_in(api: ApiServer, email: str, password: str, role: str) -> None:
    r = httpx.post(
        f"{api.url}/api/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == role


def test_seeded_events(api: ApiServer) -> None:
    r = httpx.get(f"{api.url}/api/events", params={"limit": 100}, timeout=30)
    assert r.status_code == 200, r.text
    events = {e["nombre"]: e for e in r.json()["data"]}
    rock, tech = events["Rock Concert"], events["Tech Conference"]
    assert rock["capacidadTotal"] == 1000
    assert {c["nombre"]: (c["cantidadTotal"], c["precio"]) for c in rock["categorias"]} == {
        "VIP": (100, 150),
        "General": (900, 50),
    }
    assert tech["capacidadTotal"] == 500
    assert {c["nombre"]: (c["cantidadTotal"], c["precio"]) for c in tech["categorias"]} == {
        "Premium": (50, 200),
        "Student": (200, 30),
        "General": (250, 80),
    }
    organizer = httpx.get(
        f"{api.url}/api/auth/profile",
        headers=_bearer(api.tokens["ORGANIZADOR"]),
        timeout=30,
    ).json()
    assert rock["organizadorId"] == tech["organizadorId"] == organizer["id"]


def test_seed_search_example(api: ApiServer, walkthrough: dict[str, Any]) -> None:
    """The seed's search query string: ?fecha=2024-12-31 (the walkthrough's DAY here),
    ?ubicacion=Madrid, ?disponible=true."""
    r = httpx.get(
        f"{api.url}/api/events/search",
        params={"ubicacion": "Madrid", "disponible": "true"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    names = {e["nombre"] for e in r.json()["data"]}
    assert "Rock Concert" in names and "Tech Conference" not in names
    r = httpx.get(f"{api.url}/api/events/search", params={"fecha": DAY}, timeout=30)
    assert r.status_code == 200, r.text
    found = r.json()["data"]
    assert walkthrough["event"].json()["id"] in {e["id"] for e in found}
    assert all(e["fecha"].startswith(DAY) for e in found)


def test_the_seed_body_as_dated_is_refused_as_past(
    walkthrough: dict[str, Any], api: ApiServer
) -> None:
    r = httpx.post(
        f"{api.url}/api/events",
        headers=_bearer(walkthrough["organizer_token"]),
        content=SEED_CREATE_EVENT_BODY,
        timeout=30,
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "event_past"
    assert [e["field"] for e in r.json()["errors"]] == ["fecha"]
