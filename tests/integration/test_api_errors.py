"""Error handling at the HTTP edge: problem+json everywhere, bad bodies, size limits, unknown
routes, security headers, and the Redis-backed rate limits on login, register and orders."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    ApiServer,
    bearer,
    create_event,
    problem_fields,
    register,
)

PROBLEM = "application/problem+json"
HELMET = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
}


def _email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def _problem(r: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    assert "Traceback" not in r.text and 'File "' not in r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code
    assert body["title"]
    assert body["detail"]
    _security_headers(r)
    return body


def _security_headers(r: httpx.Response) -> None:
    for name, value in HELMET.items():
        assert r.headers.get(name) == value, (name, dict(r.headers))
    csp = r.headers.get("content-security-policy", "")
    assert "default-src" in csp and "frame-ancestors" in csp, csp
    assert "object-src 'none'" in csp, csp


def _raw(
    api: ApiServer,
    method: str,
    path: str,
    content: bytes | str | None,
    token: str | None = None,
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {"Content-Type": content_type, **bearer(token)}
    return httpx.request(method, f"{api.url}{path}", content=content, headers=headers, timeout=30)


def _json(
    api: ApiServer, method: str, path: str, body: Any, token: str | None = None
) -> httpx.Response:
    return httpx.request(method, f"{api.url}{path}", json=body, headers=bearer(token), timeout=30)


def _stock(api: ApiServer, event_id: str) -> dict[str, int]:
    r = httpx.get(f"{api.url}/api/events/{event_id}", timeout=30)
    assert r.status_code == 200, r.text
    return {c["id"]: c["disponible"] for c in r.json()["categorias"]}


@pytest.fixture(scope="module")
def buyer(api: ApiServer) -> str:
    return register(api, _email("buyer"))[0]


# -- malformed bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"email": "a@b.com", "password": ',
        "not json at all",
        '{"email": "a@b.com",}',
        "{'a': 1}",
        '{"email": "a@b.com" "password": "x"}',
    ],
    ids=["truncated", "text", "trailing-comma", "single-quotes", "missing-comma"],
)
def test_malformed_json_is_4xx_problem(api: ApiServer, content: str) -> None:
    r = _raw(api, "POST", "/api/auth/login", content)
    _problem(r, (400, 422))
    assert "token" not in r.json()


def test_malformed_json_on_an_authenticated_route_is_4xx(api: ApiServer, buyer: str) -> None:
    _problem(_raw(api, "POST", "/api/orders", '{"eventoId": ', buyer), (400, 422))


@pytest.mark.parametrize(
    "content",
    ["", "null", '"text"', "[1, 2]", "42"],
    ids=["empty", "null", "string", "array", "number"],
)
def test_body_that_is_not_an_object_is_4xx(api: ApiServer, buyer: str, content: str) -> None:
    _problem(_raw(api, "POST", "/api/orders", content, buyer), (400, 422))


def test_body_with_invalid_utf8_is_4xx_not_500(api: ApiServer, buyer: str) -> None:
    content = b'{"eventoId": "\xff\xfe", "tickets": []}'
    _problem(_raw(api, "POST", "/api/orders", content, buyer), (400, 422))


def test_deeply_nested_json_is_4xx_not_500(api: ApiServer, buyer: str) -> None:
    content = '{"eventoId": ' + "[" * 5000 + "]" * 5000 + "}"
    assert len(content) < 64 * 1024
    _problem(_raw(api, "POST", "/api/orders", content, buyer), (400, 413, 422))


# -- size limit --------------------------------------------------------------------------


def test_body_over_64_kib_is_413(api: ApiServer) -> None:
    content = '{"email": "a@b.com", "password": "' + "x" * (64 * 1024) + '"}'
    body = _problem(_raw(api, "POST", "/api/auth/login", content), 413)
    assert body["status"] == 413


def test_body_over_64_kib_on_orders_is_413(api: ApiServer, buyer: str) -> None:
    content = '{"eventoId": "' + "a" * (70 * 1024) + '", "tickets": []}'
    _problem(_raw(api, "POST", "/api/orders", content, buyer), 413)


def test_chunked_body_over_64_kib_is_413(api: ApiServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"nombre": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'", "email": "a@b.com", "password": "Secret123"}'

    r = httpx.post(
        f"{api.url}/api/auth/register",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    _problem(r, 413)


def test_body_just_under_the_limit_is_validated_not_refused(api: ApiServer) -> None:
    body = {"nombre": "n" * (60 * 1024), "email": _email(), "password": "Secret123"}
    problem = _problem(_json(api, "POST", "/api/auth/register", body), 422)
    assert "nombre" in problem_fields(problem)


# -- unknown fields and wrong types ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "role"),
    [
        ("/api/auth/login", {"email": "a@b.com", "password": "Secret123", "admin": True}, None),
        (
            "/api/events",
            {
                "nombre": "x",
                "fecha": "2027-01-01T00:00:00Z",
                "ubicacion": "y",
                "capacidadTotal": 1,
                "precioBase": 1,
                "organizadorId": "me",
            },
            "ORGANIZADOR",
        ),
    ],
    ids=["login", "event"],
)
def test_unknown_fields_are_422(
    api: ApiServer, path: str, body: dict[str, Any], role: str | None
) -> None:
    token = api.tokens[role] if role else None
    problem = _problem(_json(api, "POST", path, body, token), 422)
    assert "unknown" in str(problem).lower() or set(body) & set(problem_fields(problem)), problem


def test_unknown_field_on_event_create_is_named(api: ApiServer) -> None:
    body = {
        "nombre": "x",
        "fecha": "2027-01-01T00:00:00Z",
        "ubicacion": "y",
        "capacidadTotal": 1,
        "precioBase": 1,
        "organizadorId": "me",
    }
    problem = _problem(_json(api, "POST", "/api/events", body, api.tokens["ORGANIZADOR"]), 422)
    assert "organizadorId" in problem_fields(problem), problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacidadTotal", "300"),
        ("precioBase", "20"),
        ("capacidadTotal", 300.5),
        ("capacidadTotal", True),
        ("nombre", 5),
        ("categorias", {"nombre": "A"}),
        ("fecha", 1700000000),
    ],
    ids=[
        "int-as-string",
        "float-as-string",
        "float-for-int",
        "bool-for-int",
        "int-for-str",
        "object-for-list",
        "epoch-for-date",
    ],
)
def test_wrong_types_on_event_create_are_422(api: ApiServer, field: str, value: Any) -> None:
    body: dict[str, Any] = {
        "nombre": "Tipos",
        "fecha": "2027-01-01T00:00:00Z",
        "ubicacion": "y",
        "capacidadTotal": 300,
        "precioBase": 20,
        "categorias": [],
    }
    body[field] = value
    problem = _problem(_json(api, "POST", "/api/events", body, api.tokens["ORGANIZADOR"]), 422)
    assert field in problem_fields(problem), problem


def test_boolean_given_as_string_does_not_close_the_sale(api: ApiServer, buyer: str) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)])
    problem = _problem(
        _json(api, "PUT", f"/api/events/{event['id']}", {"enVenta": "false"}, org), 422
    )
    assert "enVenta" in problem_fields(problem)
    got = httpx.get(f"{api.url}/api/events/{event['id']}", timeout=30).json()
    assert got["enVenta"] is True


def test_quantity_given_as_a_string_holds_nothing(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    cat = event["categorias"][0]["id"]
    body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": "3"}]}
    _problem(_json(api, "POST", "/api/orders", body, buyer), 422)
    assert _stock(api, event["id"]) == {cat: 5}


# -- media type --------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_json_order_sent_as_another_media_type_is_415_and_holds_nothing(
    api: ApiServer, buyer: str, content_type: str
) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("A", 1, 5)])
    cat = event["categorias"][0]["id"]
    order = (
        f'{{"eventoId": "{event["id"]}", "tickets": [{{"categoriaId": "{cat}", "cantidad": 2}}]}}'
    )
    headers = {**bearer(buyer), **({"Content-Type": content_type} if content_type else {})}
    r = httpx.post(f"{api.url}/api/orders", content=order, headers=headers, timeout=30)
    problem = _problem(r, 415)
    assert problem["code"] == "unsupported_media_type", problem
    assert _stock(api, event["id"]) == {cat: 5}
    mine = httpx.get(f"{api.url}/api/orders/my-orders", headers=bearer(buyer), timeout=30).json()
    assert all(o["eventoId"] != event["id"] for o in mine["data"]), mine


def test_a_json_update_or_sign_up_sent_as_text_changes_nothing(api: ApiServer) -> None:
    org = api.tokens["ORGANIZADOR"]
    event = create_event(api, org, [("A", 1, 5)])
    r = _raw(api, "PUT", f"/api/events/{event['id']}", '{"enVenta": false}', org, "text/plain")
    _problem(r, 415)
    assert httpx.get(f"{api.url}/api/events/{event['id']}", timeout=30).json()["enVenta"] is True
    email = _email("text")
    sign_up = f'{{"nombre": "T", "email": "{email}", "password": "Secret123"}}'
    _problem(_raw(api, "POST", "/api/auth/register", sign_up, None, "text/plain"), 415)
    login = {"email": email, "password": "Secret123"}
    _problem(_json(api, "POST", "/api/auth/login", login), 401)  # nobody was created


# -- dates at the edges ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fecha",
    ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
    ids=["past-year-9999-in-utc", "year-1", "year-9999"],
)
def test_extreme_event_dates_never_break_the_api(
    api_factory: Callable[..., ApiServer], fecha: str
) -> None:
    scratch_api = api_factory()  # its own server: a poisoned record must not leak out
    org, _ = register(scratch_api, _email("org"), role="ORGANIZADOR")
    body = {
        "nombre": "Edge",
        "fecha": fecha,
        "ubicacion": f"Edge {uuid.uuid4().hex[:8]}",
        "capacidadTotal": 1,
        "precioBase": 1,
        "categorias": [],
    }
    r = _json(scratch_api, "POST", "/api/events", body, org)
    listed = httpx.get(f"{scratch_api.url}/api/events", params={"limit": 100}, timeout=30)
    found = httpx.get(
        f"{scratch_api.url}/api/events/search", params={"ubicacion": body["ubicacion"]}, timeout=30
    )
    # refused with 422, or accepted; and whatever was accepted, the public list still answers
    statuses = (r.status_code, listed.status_code, found.status_code)
    assert statuses in ((201, 200, 200), (422, 200, 200)), (statuses, r.text, listed.text)
    if r.status_code == 422:
        assert "fecha" in problem_fields(r.json())
    else:
        created = r.json()["fecha"]
        assert created[:5] in ("0001-", "9999-"), created
        assert datetime.fromisoformat(created.replace("Z", "+00:00")).year in (1, 9999), created
    for event in listed.json()["data"]:
        assert len(event["fecha"].split("-")[0]) == 4, event["fecha"]


# -- routes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/api/nope", "/api/orders/x/refund", "/api/events/a/b/c"]
)
def test_unknown_route_is_404_problem(api: ApiServer, path: str) -> None:
    body = _problem(httpx.get(f"{api.url}{path}", timeout=30), 404)
    assert body["status"] == 404


def test_wrong_method_is_405_problem(api: ApiServer) -> None:
    r = httpx.delete(f"{api.url}/api/auth/login", timeout=30)
    _problem(r, 405)
    assert "POST" in r.headers.get("allow", "")


def test_unknown_ids_are_404_problem(api: ApiServer, buyer: str) -> None:
    _problem(httpx.get(f"{api.url}/api/events/ffffffffffffffffffffffff", timeout=30), 404)
    _problem(httpx.get(f"{api.url}/api/orders/aaaa.bbbb", headers=bearer(buyer), timeout=30), 404)


# -- security headers --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/live", "/api/events", "/schema/openapi.json"])
def test_security_headers_on_success(api: ApiServer, path: str) -> None:
    r = httpx.get(f"{api.url}{path}", timeout=30)
    assert r.status_code == 200, r.text
    _security_headers(r)
    assert "max-age=" in r.headers.get("strict-transport-security", "")
    assert r.headers.get("referrer-policy") == "no-referrer"


def test_security_headers_on_401_403_and_422(api: ApiServer, buyer: str) -> None:
    _problem(httpx.get(f"{api.url}/api/auth/profile", timeout=30), 401)
    _problem(httpx.get(f"{api.url}/api/admin/stats", headers=bearer(buyer), timeout=30), 403)
    _problem(_json(api, "POST", "/api/auth/register", {"nombre": "x"}), 422)


def test_no_server_internals_leak_in_errors(api: ApiServer, buyer: str) -> None:
    responses = [
        _raw(api, "POST", "/api/orders", "{", buyer),
        _json(
            api,
            "POST",
            "/api/orders",
            {"eventoId": "zz", "tickets": [{"categoriaId": "c", "cantidad": 1}]},
            buyer,
        ),
        httpx.get(f"{api.url}/api/orders/not-an-order", headers=bearer(buyer), timeout=30),
        httpx.get(f"{api.url}/api/auth/profile", headers=bearer("x.y.z"), timeout=30),
    ]
    for r in responses:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        text = r.text
        for leak in ("Traceback", ".py", "redis.exceptions", "litestar.", "msgspec."):
            assert leak not in text, (leak, text)


# -- rate limiting -----------------------------------------------------------------------


def _fresh_window() -> None:
    """The limiter counts fixed one-minute windows: start a burst well inside one."""
    into = time.time() % 60
    if into > 45:
        time.sleep(60 - into + 0.2)


@pytest.fixture(scope="module")
def limited(api_factory: Callable[..., ApiServer]) -> Callable[[], ApiServer]:
    """A fresh server (with its own Redis, so its own counters) allowing 5 per minute."""
    return lambda: api_factory(RATE_LIMIT_PER_MINUTE="5")


def _limited_problem(r: httpx.Response) -> None:
    body = _problem(r, 429)
    retry = r.headers.get("retry-after")
    assert retry is not None and retry.isdigit(), r.headers
    assert 1 <= int(retry) <= 60
    assert body["status"] == 429


def test_sixth_login_in_a_minute_is_429(limited: Callable[[], ApiServer]) -> None:
    server = limited()
    email = _email("rl")
    register(server, email)
    _fresh_window()
    for i in range(5):
        r = httpx.post(
            f"{server.url}/api/auth/login",
            json={"email": email, "password": "Secret123"},
            timeout=30,
        )
        assert r.status_code == 200, (i, r.text)
    r = httpx.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": "Secret123"}, timeout=30
    )
    _limited_problem(r)
    assert "token" not in r.json()


def test_failed_logins_count_too(limited: Callable[[], ApiServer]) -> None:
    server = limited()
    email = _email("brute")
    register(server, email)
    _fresh_window()
    for i in range(5):
        r = httpx.post(
            f"{server.url}/api/auth/login",
            json={"email": email, "password": f"Guess{i}xyz"},
            timeout=30,
        )
        assert r.status_code == 401, (i, r.text)
    r = httpx.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": "Secret123"}, timeout=30
    )
    _limited_problem(r)


def test_sixth_register_in_a_minute_is_429(limited: Callable[[], ApiServer]) -> None:
    server = limited()
    _fresh_window()
    for i in range(5):
        r = httpx.post(
            f"{server.url}/api/auth/register",
            json={"nombre": "R", "email": _email("reg"), "password": "Secret123"},
            timeout=30,
        )
        assert r.status_code == 201, (i, r.text)
    email = _email("sixth")
    r = httpx.post(
        f"{server.url}/api/auth/register",
        json={"nombre": "R", "email": email, "password": "Secret123"},
        timeout=30,
    )
    _limited_problem(r)
    # and the refused account was not created
    login = httpx.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": "Secret123"}, timeout=30
    )
    assert login.status_code == 401, login.text


def test_sixth_order_in_a_minute_is_429_per_user(limited: Callable[[], ApiServer]) -> None:
    server = limited()
    org, _ = register(server, _email("org"), role="ORGANIZADOR")
    token, _ = register(server, _email("buyer"))
    other, _ = register(server, _email("buyer2"))
    event = create_event(server, org, [("A", 1, 100)])
    cat = event["categorias"][0]["id"]
    body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": 1}]}
    _fresh_window()
    for i in range(5):
        r = _json(server, "POST", "/api/orders", body, token)
        assert r.status_code == 201, (i, r.text)
    _limited_problem(_json(server, "POST", "/api/orders", body, token))
    assert _stock(server, event["id"]) == {cat: 95}
    # the limit is per user: someone else still buys
    r = _json(server, "POST", "/api/orders", body, other)
    assert r.status_code == 201, r.text
    assert _stock(server, event["id"]) == {cat: 94}


def test_csp_is_strict_except_on_the_openapi_uis(api: ApiServer) -> None:
    strict = httpx.get(f"{api.url}/api/events").headers["content-security-policy"]
    assert "script-src 'self';" in strict and "unsafe-inline" not in strict
    page = httpx.get(f"{api.url}/").headers["content-security-policy"]
    assert page == strict
    # The UIs load packaged bundles and no inline script (api/openapi.py): scripts stay
    # 'self' only; their injected <style> elements need inline styles.
    ui = httpx.get(f"{api.url}/schema/swagger").headers["content-security-policy"]
    assert "script-src 'self';" in ui and "style-src 'self' 'unsafe-inline'" in ui
    assert "cdn.jsdelivr.net" not in ui and "https:" not in ui


def test_socketio_http_responses_carry_the_security_headers(api: ApiServer) -> None:
    """python-socketio answers /socket.io/ itself: the long-polling handshake and an
    unknown session get the same headers as every Litestar response."""
    handshake = httpx.get(f"{api.url}/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert handshake.status_code == 200, handshake.text
    assert handshake.text.startswith("0{") and '"sid"' in handshake.text
    _security_headers(handshake)
    unknown = httpx.get(
        f"{api.url}/socket.io/", params={"EIO": "4", "transport": "polling", "sid": "nope"}
    )
    assert unknown.status_code == 400
    _security_headers(unknown)
