"""The error contract at the HTTP edge (issue 17): a body that is not JSON is a 400
``invalid_json`` on every route; JSON with invalid fields is a 422 that lists every
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
