"""Strict request bodies, and field names for every validation error.

Litestar converts a parsed body to the handler's type with ``strict=False`` (so query
strings can be coerced), which would accept ``"cantidad": "2"`` or ``"enVenta": "false"``
and act on them. This hook decodes the raw body once more, strictly, against the same
msgspec type before the handler runs: a wrongly typed field is a 422 naming it, and
nothing changes. The strictly decoded value is then handed to Litestar as the request's
parsed JSON, so Litestar does not decode the body a second time (its ``convert`` passes an
instance of the target type through unchanged).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"unknown field `(?P<name>[^`]+)`")


def field_of(message: str, default: str = "body") -> str:
    """The offending field named by a msgspec or Litestar validation message."""
    path = ""
    m = _AT.search(message)
    if m:
        path = m.group("path")
    for pattern in (_MISSING, _UNKNOWN):
        n = pattern.search(message)
        if n:
            return f"{path}.{n.group('name')}" if path else n.group("name")
    return path or default


@cache
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def _body_type(request: Request[Any, Any, Any]) -> Any:
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    return field.annotation if field is not None else None


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: refuse a body that is valid only after coercion."""
    body_type = _body_type(request)
    if body_type is None:
        return
    raw = await request.body()
    try:
        value = _decoder(body_type).decode(raw)
    except msgspec.ValidationError as e:
        message = str(e)
        raise ValidationException(
            detail="Validation failed",
            extra=[{"key": field_of(message), "message": _AT.sub("", message), "source": "body"}],
        ) from None
    except msgspec.DecodeError:
        raise ValidationException(detail="the body is not valid JSON") from None
    # What Request.json() returns from now on (Litestar caches the parsed body in the
    # connection state shared by every Request built from this scope).
    request._connection_state.json = value
