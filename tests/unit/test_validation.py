"""api.validation: every invalid field of a body listed, in plain words."""

from __future__ import annotations

import msgspec
import pytest

from api.schemas import EventIn, EventPatch, OrderIn, RegisterIn
from api.validation import UnsupportedMediaType, body_errors, is_json_media_type, plain_message


def _errors(type_: object, body: object) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body_errors(msgspec.json.encode(body), type_)}


def test_five_missing_fields_are_all_named() -> None:
    assert _errors(EventIn, {}) == {
        name: f"{name} is required"
        for name in ("nombre", "fecha", "ubicacion", "capacidadTotal", "precioBase")
    }


def test_register_lists_every_problem_in_words() -> None:
    body = {"nombre": "", "email": "x", "password": "abc", "role": "ROOT", "admin": True}
    assert _errors(RegisterIn, body) == {
        "nombre": "nombre must not be empty",
        "email": "email must be a valid e-mail address",
        "password": "password must be at least 8 characters with letters and digits",
        "role": "role must be one of ADMIN, ORGANIZADOR, COMPRADOR",
        "admin": "admin is not an accepted field",
    }


def test_nested_lists_and_optional_fields() -> None:
    assert _errors(OrderIn, {"eventoId": "e", "tickets": []}) == {
        "tickets": "tickets must have at least one item"
    }
    assert _errors(EventPatch, {"enVenta": "false", "fecha": 5}) == {
        "enVenta": "enVenta must be true or false, not a string",
        "fecha": "fecha must be an ISO-8601 date-time (e.g. 2027-06-01T20:00:00Z), not an integer",
    }


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        ("Expected `int` <= 100", "limit must be at most 100"),
        ("Expected `int`, got `str`", "limit must be an integer, not a string"),
        ("Expected `str` of length <= 200", "limit must be at most 200 characters"),
    ],
)
def test_plain_message(message: str, plain: str) -> None:
    assert plain_message("limit", message) == plain


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/json",
        b"application/json; charset=utf-8",
        b"application/json;charset=UTF-8",
        b"  Application/JSON  ",
        b"APPLICATION/JSON; CHARSET=utf-8",
        b"application/merge-patch+json",
        b"application/vnd.api+json",
        b"application/problem+json",
        b"application/vnd.onsale.order.v1+JSON; q=1",
    ],
)
def test_json_media_types(content_type: bytes) -> None:
    assert is_json_media_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        b"",
        b";charset=utf-8",
        b"text/plain",
        b"text/plain; charset=utf-8",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"text/json",
        b"json",
        b"application/jsonx",
        b"application/json-seq",
        b"application/+json",
        b"application/x json+json",
        b"application/xml",
        b"text/vnd.x+json",
        b"application/json+xml",
        b"application/json/x",
    ],
)
def test_not_json_media_types(content_type: bytes | None) -> None:
    assert not is_json_media_type(content_type)


def test_unsupported_media_type_says_what_to_send() -> None:
    exc = UnsupportedMediaType(b"text/plain; charset=utf-8")
    assert exc.status_code == 415
    assert (
        exc.detail == "the body must be JSON: send Content-Type: application/json (not text/plain)"
    )
    assert exc.headers == {"Accept": "application/json"}
    assert "has no Content-Type" in UnsupportedMediaType(None).detail
    assert len(UnsupportedMediaType(b"x/" + b"y" * 1000).detail) < 200
