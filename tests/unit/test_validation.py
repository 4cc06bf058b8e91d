"""api.validation: every invalid field of a body listed, in plain words."""

from __future__ import annotations

import msgspec
import pytest

from api.schemas import EventIn, EventPatch, OrderIn, RegisterIn
from api.validation import body_errors, plain_message


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
