"""Pins what api/litestar_seam.py relies on: ``Request.json()`` returns the value stored
in the connection state, without reading the body again, for every Request of a scope."""

from __future__ import annotations

from typing import Any

from litestar import Request

from api.litestar_seam import set_parsed_json


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "state": {},
    }


async def test_request_json_returns_the_stored_value_without_reading_the_body() -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read again")

    shared = scope()
    first: Request[Any, Any, Any] = Request(shared, receive=receive)
    parsed = object()
    set_parsed_json(first, parsed)
    assert await first.json() is parsed
    later: Request[Any, Any, Any] = Request(shared, receive=receive)  # as Litestar builds
    assert await later.json() is parsed
