"""Strict request bodies, and field names for every validation error.

Litestar converts a parsed body to the handler's type with ``strict=False`` (so query
strings can be coerced), which would accept ``"cantidad": "2"`` or ``"enVenta": "false"``
and act on them. This hook decodes the raw body once more, strictly, against the same
msgspec type before the handler runs: a wrongly typed field is a 422 naming it, and
nothing changes. The strictly decoded value is then handed to Litestar as the request's
parsed JSON, so Litestar does not decode the body a second time (its ``convert`` passes an
instance of the target type through unchanged).

A body sent under a media type that is not JSON (``text/plain``, a form, none at all: what
``curl -d`` sends without ``-H "Content-Type: application/json"``) is
:class:`UnsupportedMediaType` (415, RFC 9110 section 15.5.16) before it is even decoded:
only ``application/json`` and the ``application/*+json`` types (RFC 6839) are taken, their
parameters (``; charset=utf-8``) aside, in any case (:func:`is_json_media_type`). A
request without content (an empty body) is judged by its body, as before, whatever its
type. A body that is not JSON at all is :class:`InvalidJSON` (400, RFC 9110); JSON whose fields
are invalid is :class:`InvalidFields` (422) listing every offending field in plain words:
msgspec stops at the first error, so on failure the decoded object is walked field by
field against the Struct (:func:`body_errors`).
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException

from api import schemas
from api.litestar_seam import set_parsed_json
from api.security import password_problems

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


class InvalidJSON(Exception):
    """The body is not JSON at all (or not UTF-8): a 400, not a 422."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ``application/json`` or ``application/<subtype>+json`` (RFC 6839 section 3.1), the subtype
# a token (RFC 9110 section 5.6.2), lower-cased first: media types are case-insensitive.
_JSON_MEDIA = re.compile(rb"application/(?:json|[!#$%&'*+.^_`|~0-9a-z-]+\+json)")
JSON_MEDIA_TYPE = "application/json"


def is_json_media_type(content_type: bytes | None) -> bool:
    """Whether a ``Content-Type`` value names JSON: ``application/json`` or any
    ``application/*+json``, with any parameters, in any case."""
    if content_type is None:
        return False
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or _JSON_MEDIA.fullmatch(media) is not None


class UnsupportedMediaType(HTTPException):
    """A body sent under a media type that is not JSON: a 415 (``unsupported_media_type``)
    that names what to send, in its ``detail`` and in ``Accept`` (RFC 9110 section
    15.5.16)."""

    status_code = 415

    def __init__(self, content_type: bytes | None) -> None:
        media = (content_type or b"").partition(b";")[0].strip()[:64].decode("latin-1")
        sent = f"not {media}" if media else "the request has no Content-Type"
        super().__init__(
            detail=f"the body must be JSON: send Content-Type: {JSON_MEDIA_TYPE} ({sent})",
            headers={"Accept": JSON_MEDIA_TYPE},
        )


def content_type_of(scope: Any) -> bytes | None:
    """The request's first ``Content-Type`` value, from the raw ASGI headers."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value)
    return None


class InvalidFields(ValidationException):
    """JSON whose fields are invalid: ``errors`` lists each, already in plain words."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(detail=summary(errors), extra=errors)
        self.errors = errors


# -- plain-language messages ---------------------------------------------------------------

_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "datetime": "an ISO-8601 date-time (e.g. 2027-06-01T20:00:00Z)",
    "date": "a date (YYYY-MM-DD)",
    "bytes": "a string",
}
_OPS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}
_UNITS = {"str": "character", "array": "item", "object": "entry", "bytes": "byte"}
_GOT = {"bool": "a boolean", "float": "a decimal number", "array": "a list"}


# The patterns of the API's annotated string types (as msgspec quotes them: repr), named
# the way a person reads them.
def _pattern(annotated: Any) -> str:
    return repr(next(m.pattern for m in get_args(annotated)[1:] if isinstance(m, msgspec.Meta)))


_FORMATS = {
    _pattern(schemas.Email): "a valid e-mail address",
    _pattern(schemas.Id): "a valid id (letters, digits, '_' or '-')",
    _pattern(schemas.OrderId): "a valid order id",
}
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_LENGTH = re.compile(r"^Expected `(?P<kind>\w+)` of length (?P<op>[<>]=?) (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `(?P<kind>\w+)` (?P<op>[<>]=?) (?P<n>\S+)$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>.+)$", re.DOTALL)
_INVALID = re.compile(r"^Invalid (?P<what>.+?)(?: value (?P<value>.+))?$")


def _plural(n: str, unit: str) -> str:
    return f"{n} {unit}" if n == "1" else f"{n} {unit}s"


def _choices(type_: Any) -> list[str]:
    base = _unwrap(type_)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [str(m.value) for m in base]
    if get_origin(base) is Literal:
        return [str(v) for v in get_args(base)]
    return []


def plain_message(field: str, message: str, type_: Any = None) -> str:
    """A msgspec / Litestar validation message about ``field``, in words a person reads:
    ``Expected `int`, got `str``` -> ``cantidad must be an integer, not a string``."""
    message = _AT.sub("", message).strip()
    subject = "the body" if field in ("", "body", "data") else field
    if _MISSING.search(message):
        return f"{subject} is required"
    if _UNKNOWN.search(message):
        return f"{subject} is not an accepted field"
    if m := _EXPECTED.match(message):
        wanted = [w for w in m["want"].split(" | ") if w != "null"] or ["null"]
        want = " or ".join(_WORDS.get(w, f"a {w}") for w in wanted)
        if subject == "the body" and m["want"] == "object":
            want = "a JSON object"
        got = _GOT.get(m["got"]) or _WORDS.get(m["got"], m["got"])
        return f"{subject} must be {want}, not {got}"
    if m := _LENGTH.match(message):
        unit = _UNITS.get(m["kind"], "element")
        if m["op"] == ">=" and m["n"] == "1" and m["kind"] == "str":
            return f"{subject} must not be empty"
        if m["op"] == ">=" and m["n"] == "1":
            return f"{subject} must have at least one {unit}"
        verb = "be" if m["kind"] == "str" else "have"
        return f"{subject} must {verb} {_OPS[m['op']]} {_plural(m['n'], unit)}"
    if m := _BOUND.match(message):
        return f"{subject} must be {_OPS[m['op']]} {m['n']}"
    if m := _REGEX.match(message):
        return f"{subject} must be {_FORMATS.get(m['pattern'], 'in the expected format')}"
    if m := _INVALID.match(message):
        choices = _choices(type_)
        if choices:
            return f"{subject} must be one of {', '.join(choices)}"
        what = m["what"]
        if "datetime" in what:
            return f"{subject} must be {_WORDS['datetime']}"
        return f"{subject} must be a valid {what.replace(' encoded', '')}"
    return f"{subject} is invalid: {message}" if message else f"{subject} is invalid"


def summary(errors: list[dict[str, str]]) -> str:
    """The problem's ``detail``: the messages themselves when few, else the fields."""
    if not errors:
        return "the request is not valid"
    if len(errors) <= 3:
        return "; ".join(e["message"] for e in errors)
    names = ", ".join(e["field"] for e in errors[:8])
    more = f" and {len(errors) - 8} more" if len(errors) > 8 else ""
    return f"{len(errors)} invalid fields: {names}{more}"


# -- every invalid field of a body ---------------------------------------------------------

# Rules beyond the types, checked here only to list them beside the type errors of a body
# that fails anyway (a body that decodes is checked by its service, as before).
EXTRA_RULES: dict[type, dict[str, Callable[[Any], str | None]]] = {
    schemas.RegisterIn: {"password": password_problems},
}


def _unwrap(type_: Any) -> Any:
    while get_origin(type_) is Annotated:
        type_ = get_args(type_)[0]
    return type_


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def _optional(type_: Any) -> Any:
    """``X | None`` -> X, for a value that is not None."""
    base = _unwrap(type_)
    if get_origin(base) in (Union, types.UnionType):
        rest = [a for a in get_args(base) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return type_


def _problems(value: Any, type_: Any, path: str) -> list[dict[str, str]]:
    try:
        msgspec.convert(value, type_, strict=True)
        return []
    except msgspec.ValidationError as e:
        first = str(e)
    out: list[dict[str, str]] = []
    base = _unwrap(_optional(type_)) if value is not None else _unwrap(type_)
    if isinstance(base, type) and issubclass(base, msgspec.Struct) and isinstance(value, dict):
        fields = msgspec.structs.fields(base)
        known = {f.encode_name for f in fields}
        for f in fields:
            where = _join(path, f.encode_name)
            if f.encode_name not in value:
                if f.required:
                    out.append(_error(where, f"{where} is required"))
            else:
                found = _problems(value[f.encode_name], f.type, where)
                rule = EXTRA_RULES.get(base, {}).get(f.encode_name)
                if not found and rule is not None and (problem := rule(value[f.encode_name])):
                    found = [_error(where, problem)]
                out.extend(found)
        if base.__struct_config__.forbid_unknown_fields:
            for name in value:
                if name not in known:
                    where = _join(path, str(name))
                    out.append(_error(where, f"{where} is not an accepted field"))
    elif get_origin(base) is list and isinstance(value, list) and get_args(base):
        item = get_args(base)[0]
        for i, element in enumerate(value):
            out.extend(_problems(element, item, _join(path, i)))
    if out:
        return out
    inner = field_of(first, "")  # where, inside ``value``, msgspec stopped
    where = (f"{path}{inner}" if inner.startswith("[") else _join(path, inner)) if inner else path
    return [_error(where, plain_message(where, first, None if inner else type_))]


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field or "body", "message": message, "source": "body"}


def body_errors(raw: bytes, type_: Any) -> list[dict[str, str]]:
    """Every invalid field of a JSON body that failed to decode as ``type_``. Raises
    :class:`InvalidJSON` if it is not JSON after all (the typed decoder stops at the first
    invalid field, before it reaches, say, a trailing comma)."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise InvalidJSON(str(e)) from None
    return _problems(value, type_, "")


@cache
def strict_decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """The strict decoder of a body type, one per type (also api/hot_hold.py's)."""
    return msgspec.json.Decoder(type_)


def _body_type(request: Request[Any, Any, Any]) -> Any:
    field = request.route_handler.parsed_fn_signature.parameters.get("data")
    return field.annotation if field is not None else None


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: refuse a body that is not sent as JSON, or that is valid
    only after coercion."""
    body_type = _body_type(request)
    if body_type is None:
        return
    raw = await request.body()
    if raw:
        content_type = content_type_of(request.scope)
        if not is_json_media_type(content_type):
            raise UnsupportedMediaType(content_type)
    try:
        value = strict_decoder(body_type).decode(raw)
    except msgspec.ValidationError as e:
        errors = body_errors(raw, body_type)
        if not errors:  # not reached: the walk finds what msgspec found, at the least
            field = field_of(str(e))
            errors = [_error(field, plain_message(field, str(e)))]
        raise InvalidFields(errors) from None
    except msgspec.DecodeError as e:
        raise InvalidJSON(str(e) if raw.strip() else "the body is empty") from None
    # What Request.json() returns from now on (Litestar caches the parsed body in the
    # connection state shared by every Request built from this scope).
    set_parsed_json(request, value)
