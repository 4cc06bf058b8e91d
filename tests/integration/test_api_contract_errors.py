"""The error contract at the HTTP edge (issue 17): a body that is not JSON is a 400
``invalid_json`` on every route, and one not sent as JSON (its ``Content-Type``) a 415
``unsupported_media_type``; JSON with invalid fields is a 422 that lists every
invalid field in plain words; a sold-out refusal names the category; every error carries a
``code``; login limits slow guessing without letting a stranger lock the holder out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    ApiServer,
    bearer,
    create_event,
    expect_problem,
    problem_fields,
    register,
    unique_email,
)


def _raw(api: ApiServer, method: str, path: str, content: str, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **bearer(token)}
    return httpx.request(method, f"{api.url}{path}", content=content, headers=headers, timeout=30)


def _post(api: ApiServer, path: str, body: Any, token: str | None = None) -> httpx.Response:
    return httpx.post(f"{api.url}{path}", json=body, headers=bearer(token), timeout=30)


@pytest.fixture(scope="module")
def buyer(api: ApiServer) -> str:
    return register(api, unique_email("buyer"))[0]


# -- 400 for a body that is not JSON -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("POST", "/api/orders", "COMPRADOR"),
        ("POST", "/api/auth/login", None),
        ("POST", "/api/auth/register", None),
        ("POST", "/api/events", "ORGANIZADOR"),
        ("PUT", "/api/orders/e.0123456789abcdef/confirm", "COMPRADOR"),
    ],
)
@pytest.mark.parametrize("content", ["{not json", '{"a": 1,}', ""], ids=["bad", "comma", "empty"])
def test_a_body_that_is_not_json_is_400_invalid_json(
    api: ApiServer, method: str, path: str, role: str | None, content: str
) -> None:
    token = api.tokens[role] if role else None
    body = expect_problem(_raw(api, method, path, content, token), 400)
    assert body["code"] == "invalid_json", body
    assert "JSON" in body["detail"], body


# -- 415 for a body that is not sent as JSON ------------------------------------------------

BODY_ROUTES = [
    ("POST", "/api/orders", "COMPRADOR"),
    ("POST", "/api/auth/login", None),
    ("POST", "/api/auth/register", None),
    ("POST", "/api/events", "ORGANIZADOR"),
    ("PUT", "/api/orders/e.0123456789abcdef/confirm", "COMPRADOR"),
]


def _typed(
    api: ApiServer, method: str, path: str, content: str, token: str | None, ctype: str | None
) -> httpx.Response:
    headers = {**bearer(token), **({"Content-Type": ctype} if ctype is not None else {})}
    return httpx.request(method, f"{api.url}{path}", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
@pytest.mark.parametrize(
    "ctype",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",  # what curl -d sends without -H
        "multipart/form-data; boundary=x",
        "application/xml",
        "text/json",
        "application/jsonx",
        "application/json-seq",
        "application/+json",
        "json",
        "",
    ],
    ids=[
        "none",
        "text-plain",
        "form",
        "multipart",
        "xml",
        "text-json",
        "jsonx",
        "json-seq",
        "bare-suffix",
        "no-subtype",
        "empty",
    ],
)
def test_a_body_not_sent_as_json_is_415(
    api: ApiServer, method: str, path: str, role: str | None, ctype: str | None
) -> None:
    token = api.tokens[role] if role else None
    r = _typed(api, method, path, '{"email": "a@b.com", "password": "Secret123"}', token, ctype)
    body = expect_problem(r, 415)
    assert body["code"] == "unsupported_media_type", body
    assert "application/json" in body["detail"], body
    assert r.headers["accept"] == "application/json", r.headers


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;Charset=UTF-8",
        "application/merge-patch+json",
        "application/vnd.onsale.order+JSON; v=1",
    ],
)
def test_json_and_structured_json_media_types_are_accepted(
    api: ApiServer, buyer: str, ctype: str
) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("Pista", 10, 5)])
    order = f'{{"eventoId": "{event["id"]}", "tickets": [{{"categoriaId": '
    order += f'"{event["categorias"][0]["id"]}", "cantidad": 1}}]}}'
    r = _typed(api, "POST", "/api/orders", order, buyer, ctype)
    assert r.status_code == 201, r.text
    # a bad body under an accepted type is judged as JSON, as before
    body = expect_problem(_typed(api, "POST", "/api/auth/login", "{", None, ctype), 400)
    assert body["code"] == "invalid_json", body


@pytest.mark.parametrize(("method", "path", "role"), BODY_ROUTES)
def test_no_body_without_a_content_type_is_still_400_invalid_json(
    api: ApiServer, method: str, path: str, role: str | None
) -> None:
    """No content: no media type to refuse; the body that is missing is the problem."""
    token = api.tokens[role] if role else None
    for ctype in (None, "text/plain"):
        body = expect_problem(_typed(api, method, path, "", token, ctype), 400)
        assert body["code"] == "invalid_json", body


def test_routes_without_a_body_ignore_the_content_type(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("Pista", 10, 5)])
    cat = event["categorias"][0]["id"]
    r = _post(
        api,
        "/api/orders",
        {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": 1}]},
        buyer,
    )
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    r = _typed(api, "PUT", f"/api/orders/{order_id}/cancel", "whatever", buyer, "text/plain")
    assert r.status_code == 200 and r.json()["estado"] == "CANCELLED", r.text
    for ctype in (None, "text/plain"):
        r = _typed(api, "GET", "/api/orders/my-orders", "", buyer, ctype)
        assert r.status_code == 200, r.text


def test_the_415_is_documented_on_the_routes_that_take_a_body(api: ApiServer) -> None:
    doc = httpx.get(f"{api.url}/schema/openapi.json", timeout=30).json()
    with_body = without_body = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            has_415 = "415" in op["responses"]
            assert has_415 == ("requestBody" in op), (method, path, op["responses"].keys())
            if has_415:
                with_body += 1
                response = op["responses"]["415"]
                assert "application/problem+json" in response["content"], response
                assert "unsupported_media_type" in response["description"], response
                assert "Accept" in response["headers"], response
            else:
                without_body += 1
    assert with_body >= 10 and without_body >= 10, (with_body, without_body)


def test_json_that_is_not_an_object_stays_422(api: ApiServer, buyer: str) -> None:
    body = expect_problem(_raw(api, "POST", "/api/orders", "[1, 2]", buyer), 422)
    assert body["code"] == "validation_failed"
    assert body["errors"][0]["message"] == "the body must be a JSON object, not a list", body


# -- 422: every invalid field, in plain words ------------------------------------------------


def test_every_missing_field_is_listed(api: ApiServer) -> None:
    body = expect_problem(_post(api, "/api/events", {}, api.tokens["ORGANIZADOR"]), 422)
    assert body["code"] == "validation_failed"
    fields = problem_fields(body)
    assert set(fields) == {"nombre", "fecha", "ubicacion", "capacidadTotal", "precioBase"}, body
    for error in body["errors"]:
        assert error == {
            "field": error["field"],
            "message": f"{error['field']} is required",
            "source": "body",
        }


def test_a_bad_email_reads_as_words_not_a_regex(api: ApiServer) -> None:
    r = _post(api, "/api/auth/register", {"nombre": "Ana", "email": "ana", "password": "abc"})
    body = expect_problem(r, 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {
        "email": "email must be a valid e-mail address",
        "password": "password must be at least 8 characters with letters and digits",
    }, body
    assert "regex" not in r.text and "^[" not in r.text


def test_nested_and_typed_errors_are_all_listed(api: ApiServer, buyer: str) -> None:
    order = {"eventoId": "x y", "tickets": [{"categoriaId": 1, "cantidad": 0}, {"cantidad": "3"}]}
    body = expect_problem(_post(api, "/api/orders", order, buyer), 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {
        "eventoId": "eventoId must be a valid id (letters, digits, '_' or '-')",
        "tickets[0].categoriaId": "tickets[0].categoriaId must be a string, not an integer",
        "tickets[0].cantidad": "tickets[0].cantidad must be at least 1",
        "tickets[1].categoriaId": "tickets[1].categoriaId is required",
        "tickets[1].cantidad": "tickets[1].cantidad must be an integer, not a string",
    }, body


def test_a_weak_password_alone_is_named_in_plain_words(api: ApiServer) -> None:
    r = _post(api, "/api/auth/register", {"nombre": "A", "email": unique_email(), "password": "x"})
    body = expect_problem(r, 422)
    assert body["code"] == "weak_password"
    assert body["errors"] == [
        {
            "field": "password",
            "message": "password must be at least 8 characters with letters and digits",
            "source": "body",
        }
    ]


def test_query_parameter_errors_read_as_words(api: ApiServer) -> None:
    r = httpx.get(f"{api.url}/api/events", params={"limit": 1000}, timeout=30)
    body = expect_problem(r, 422)
    assert body["code"] == "validation_failed"
    assert body["errors"] == [
        {"field": "limit", "message": "limit must be at most 100", "source": "query"}
    ], body


# -- sold out names the category -----------------------------------------------------------


def test_sold_out_names_the_category_by_name_and_id(api: ApiServer, buyer: str) -> None:
    event = create_event(api, api.tokens["ORGANIZADOR"], [("Pista VIP", 50, 2)])
    cat = event["categorias"][0]["id"]
    order = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": 3}]}
    body = expect_problem(_post(api, "/api/orders", order, buyer), 409)
    assert body["code"] == "sold_out"
    assert body["categoriaId"] == cat and body["categoriaNombre"] == "Pista VIP", body
    assert body["disponible"] == 2
    assert "Pista VIP" in body["detail"] and cat in body["detail"], body


# -- a code on every error -----------------------------------------------------------------


def test_every_error_response_has_a_code(api: ApiServer, buyer: str) -> None:
    cases = [
        (httpx.get(f"{api.url}/api/auth/profile", timeout=30), 401, "unauthorized"),
        (
            httpx.get(f"{api.url}/api/auth/profile", headers=bearer("x.y.z"), timeout=30),
            401,
            "unauthorized",
        ),
        (httpx.get(f"{api.url}/api/admin/stats", headers=bearer(buyer), timeout=30), 403, None),
        (_post(api, "/api/auth/register", {"nombre": "x"}), 422, "validation_failed"),
        (httpx.get(f"{api.url}/api/nope", timeout=30), 404, "not_found"),
        (httpx.delete(f"{api.url}/api/auth/login", timeout=30), 405, "method_not_allowed"),
        (_raw(api, "POST", "/api/orders", "{", buyer), 400, "invalid_json"),
        (
            _typed(api, "POST", "/api/orders", "{}", buyer, "text/plain"),
            415,
            "unsupported_media_type",
        ),
    ]
    for r, status, code in cases:
        body = expect_problem(r, status)
        assert isinstance(body.get("code"), str) and body["code"], (status, body)
        if code:
            assert body["code"] == code, (status, body)
    forbidden = expect_problem(cases[2][0], 403)
    assert forbidden["code"] == "forbidden" and "ADMIN" in forbidden["detail"], forbidden


def test_a_missing_token_says_how_to_authenticate(api: ApiServer) -> None:
    body = expect_problem(httpx.get(f"{api.url}/api/auth/profile", timeout=30), 401)
    assert "Authorization: Bearer" in body["detail"], body


# -- login limits --------------------------------------------------------------------------


def _fresh_window() -> None:
    into = time.time() % 60
    if into > 45:
        time.sleep(60 - into + 0.2)


def _login(server: ApiServer, email: str, password: str, client: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client},
        timeout=30,
    )


@pytest.fixture(scope="module")
def limited(api_factory: Callable[..., ApiServer]) -> ApiServer:
    """5 per minute, X-Forwarded-For believed from the test's own address."""
    return api_factory(RATE_LIMIT_PER_MINUTE="5", TRUSTED_PROXIES="127.0.0.1")


def test_a_stranger_cannot_lock_the_holder_out(limited: ApiServer) -> None:
    email = unique_email("victim")
    register(limited, email)
    _fresh_window()
    for i in range(5):
        assert _login(limited, email, f"Guess{i}xyz", "203.0.113.7").status_code == 401
    expect_problem(_login(limited, email, "Secret123", "203.0.113.7"), 429)
    # the attacker's address is slowed; the holder, elsewhere, still logs in
    r = _login(limited, email, "Secret123", "198.51.100.20")
    assert r.status_code == 200, r.text
