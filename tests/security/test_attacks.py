"""Attacks the integration suite does not already cover, each answered with a 4xx that
changes nothing.

Covered elsewhere (not repeated here): forged JWTs (``alg: none``, wrong signature,
tampered payload, HS512, expired, no ``exp``/``iat``, unknown role) and ADMIN through
register in tests/integration/test_api_auth.py; IDOR on orders in test_api_orders.py, on
events and categories in test_api_events.py, on sales in test_api_admin.py, a valid token
joining another user's room in test_ws.py; malformed, oversized and deeply nested bodies,
unknown ids and single-worker rate limits in test_api_errors.py.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from websockets.sync.client import connect

from api.jwt_cache import USER_CHECK_TTL_S
from persistence.sqlite import SQLiteStore
from tests.integration.conftest import TEST_SECRET
from tests.security.conftest import (
    ApiServer,
    assert_problem,
    auth,
    create_event,
    register,
    wait_until,
)


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def _available(api: ApiServer, event_id: str) -> dict[str, int]:
    r = httpx.get(f"{api.url}/api/events/{event_id}", timeout=30)
    assert r.status_code == 200, r.text
    return {c["id"]: c["disponible"] for c in r.json()["categorias"]}


def _delete_user(api: ApiServer, user_id: str) -> None:
    """Delete straight in the store, as an operator (or a GDPR erasure job) would."""
    store = SQLiteStore(api.data_dir / "onsale.db")
    try:
        assert store.delete_user(user_id)
    finally:
        store.close()


@pytest.fixture(scope="module")
def event(api: ApiServer) -> dict[str, Any]:
    return create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 50), ("B", 20, 50)])


def _order_body(event: dict[str, Any], qty: Any, cat: int = 0) -> dict[str, Any]:
    return {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][cat]["id"], "cantidad": qty}],
    }


# -- tokens of deleted users ---------------------------------------------------------------


def test_token_of_a_deleted_user_that_never_called_is_refused_at_once(
    api: ApiServer, event: dict[str, Any]
) -> None:
    token, user = register(api, _email("gone-fresh"))
    _delete_user(api, user["id"])
    before = _available(api, event["id"])
    r = httpx.post(
        f"{api.url}/api/orders", json=_order_body(event, 2), headers=auth(token), timeout=30
    )
    assert_problem(r, (401,))
    assert_problem(httpx.get(f"{api.url}/api/auth/profile", headers=auth(token)), (401,))
    assert _available(api, event["id"]) == before


def test_token_of_a_deleted_user_stops_holding_within_the_user_check_interval(
    api: ApiServer, event: dict[str, Any]
) -> None:
    """A token already seen is re-checked against the store every USER_CHECK_TTL_S."""
    token, user = register(api, _email("gone-active"))
    r = httpx.post(
        f"{api.url}/api/orders", json=_order_body(event, 1), headers=auth(token), timeout=30
    )
    assert r.status_code == 201, r.text
    _delete_user(api, user["id"])
    assert_problem(httpx.get(f"{api.url}/api/auth/profile", headers=auth(token)), (401,))
    time.sleep(USER_CHECK_TTL_S + 0.5)
    before = _available(api, event["id"])
    for path, method, body in (
        ("/api/orders", "POST", _order_body(event, 1)),
        ("/api/orders/my-orders", "GET", None),
        (f"/api/orders/{r.json()['id']}/confirm", "PUT", {"metodoPago": "c", "transactionId": "t"}),
    ):
        got = httpx.request(method, f"{api.url}{path}", json=body, headers=auth(token), timeout=30)
        assert_problem(got, (401,))
    assert _available(api, event["id"]) == before


def test_token_of_a_deleted_organizer_creates_no_event(api: ApiServer) -> None:
    token, user = register(api, _email("gone-org"), role="ORGANIZADOR")
    _delete_user(api, user["id"])
    listed = httpx.get(f"{api.url}/api/events", params={"limit": 1}, timeout=30)
    total = listed.json()["pagination"]["total"]
    body = {
        "nombre": "Ghost",
        "descripcion": "x",
        "fecha": "2027-01-01T20:00:00Z",
        "ubicacion": "Nowhere",
        "capacidadTotal": 10,
        "precioBase": 1,
        "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 10, "beneficios": []}],
    }
    r = httpx.post(f"{api.url}/api/events", json=body, headers=auth(token), timeout=30)
    assert_problem(r, (401,))
    listed = httpx.get(f"{api.url}/api/events", params={"limit": 1}, timeout=30)
    assert listed.json()["pagination"]["total"] == total


# -- role escalation through the profile and register --------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST", "DELETE"])
def test_profile_cannot_be_written(api: ApiServer, method: str) -> None:
    token, user = register(api, _email("climber"))
    r = httpx.request(
        method,
        f"{api.url}/api/auth/profile",
        json={"role": "ADMIN", "nombre": "root"},
        headers=auth(token),
        timeout=30,
    )
    assert_problem(r, (405,))
    profile = httpx.get(f"{api.url}/api/auth/profile", headers=auth(token), timeout=30).json()
    assert profile["role"] == "COMPRADOR" and profile["nombre"] == user["nombre"]
    assert_problem(httpx.get(f"{api.url}/api/admin/stats", headers=auth(token)), (403,))


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "admin"},
        {"role": "Admin"},
        {"role": " ADMIN"},
        {"role": "ADMIN\u0000"},
        {"role": ["ADMIN"]},
        {"role": {"name": "ADMIN"}},
        {"rol": "ADMIN"},
        {"isAdmin": True},
        {"user": {"role": "ADMIN"}},
    ],
    ids=["lower", "title", "space", "nul", "list", "object", "rol", "isAdmin", "nested"],
)
def test_register_role_variants_never_make_an_admin(api: ApiServer, extra: dict[str, Any]) -> None:
    email = _email("variant")
    body = {"nombre": "V", "email": email, "password": "Secret123", **extra}
    r = httpx.post(f"{api.url}/api/auth/register", json=body, timeout=30)
    assert_problem(r, (403, 422))
    login = httpx.post(
        f"{api.url}/api/auth/login", json={"email": email, "password": "Secret123"}, timeout=30
    )
    assert login.status_code == 401, login.text  # and no account was created


# -- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity",
    [1.5, 2.0, 1e3, 10**30, -(2**63), 2**63, True, None, "1", [1], {"n": 1}, 1001],
    ids=[
        "fraction",
        "float-integral",
        "exponent",
        "huge",
        "int64-min",
        "int64-overflow",
        "bool",
        "null",
        "string",
        "list",
        "object",
        "over-1000",
    ],
)
def test_quantity_attacks_are_422_and_hold_nothing(
    api: ApiServer, event: dict[str, Any], quantity: Any
) -> None:
    token, _ = register(api, _email("qty"))
    before = _available(api, event["id"])
    r = httpx.post(
        f"{api.url}/api/orders",
        json=_order_body(event, quantity),
        headers=auth(token),
        timeout=30,
    )
    assert_problem(r, (422,))
    assert _available(api, event["id"]) == before


def test_splitting_an_order_into_lines_does_not_beat_the_per_order_limit(
    api: ApiServer, event: dict[str, Any]
) -> None:
    token, _ = register(api, _email("split"))
    cat = event["categorias"][0]["id"]
    other = event["categorias"][1]["id"]
    before = _available(api, event["id"])
    for lines in (
        [{"categoriaId": cat, "cantidad": 6}, {"categoriaId": cat, "cantidad": 6}],
        [{"categoriaId": cat, "cantidad": 1}] * 11,
        [{"categoriaId": cat, "cantidad": 6}, {"categoriaId": other, "cantidad": 5}],
    ):
        r = httpx.post(
            f"{api.url}/api/orders",
            json={"eventoId": event["id"], "tickets": lines},
            headers=auth(token),
            timeout=30,
        )
        assert_problem(r, (422,))
    assert _available(api, event["id"]) == before


# -- forged tokens on the WebSocket ------------------------------------------------------------


def _forged(user_id: str, **kind: Any) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 3600, "extras": {"role": "ADMIN"}}
    if kind.get("expired"):
        claims.update(iat=now - 7200, exp=now - 3600)
    if kind.get("alg") == "none":
        return jwt.encode(claims, None, algorithm="none")
    secret = kind.get("secret", TEST_SECRET)
    return jwt.encode(claims, secret, algorithm="HS256")


def _frames_until(ws: Any, names: set[str], timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {names} frame"
        msg: dict[str, Any] = json.loads(ws.recv(timeout=left))
        if msg["event"] in names:
            return msg


@pytest.mark.parametrize(
    "kind",
    [{"alg": "none"}, {"secret": "not-the-secret-0123456789abcdef!!"}, {"expired": True}],
    ids=["alg-none", "wrong-secret", "expired"],
)
def test_forged_admin_token_cannot_join_another_users_room(
    api: ApiServer, kind: dict[str, Any]
) -> None:
    _, victim = register(api, _email("victim"))
    _, attacker = register(api, _email("attacker"))
    token = _forged(attacker["id"], **kind)
    base = api.url.replace("http://", "ws://") + "/ws"
    with connect(f"{base}?token={token}", open_timeout=10) as ws:
        err = _frames_until(ws, {"error"})
        assert err["data"]["code"] == "unauthorized", err
        ws.send(json.dumps({"event": "join:user", "data": {"userId": victim["id"]}}))
        assert _frames_until(ws, {"error", "joined"})["event"] == "error"
    with connect(base, open_timeout=10) as ws:
        ws.send(json.dumps({"event": "auth", "data": {"token": token}}))
        assert _frames_until(ws, {"error", "authenticated"})["event"] == "error"
        ws.send(json.dumps({"event": "join:user", "data": {"userId": victim["id"]}}))
        assert _frames_until(ws, {"error", "joined"})["event"] == "error"


def test_deleted_users_token_cannot_join_a_user_room(api: ApiServer) -> None:
    token, user = register(api, _email("gone-ws"))
    _delete_user(api, user["id"])
    base = api.url.replace("http://", "ws://") + "/ws"
    with connect(base, open_timeout=10) as ws:
        ws.send(json.dumps({"event": "auth", "data": {"token": token}}))
        first = _frames_until(ws, {"error", "authenticated"})
        ws.send(json.dumps({"event": "join:user", "data": {"userId": user["id"]}}))
        second = _frames_until(ws, {"error", "joined"})
    assert first["event"] == "error" and second["event"] == "error", (first, second)


def test_admin_token_still_joins_any_room_positive_control(api: ApiServer) -> None:
    _, victim = register(api, _email("watched"))
    base = api.url.replace("http://", "ws://") + "/ws"
    assert wait_until(lambda: api.tokens.get("ADMIN"), 1)
    with connect(f"{base}?token={api.tokens['ADMIN']}", open_timeout=10) as ws:
        ws.send(json.dumps({"event": "join:user", "data": {"userId": victim["id"]}}))
        assert _frames_until(ws, {"error", "joined"})["event"] == "joined"
