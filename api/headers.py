"""The headers every HTTP response of the process carries: the Helmet set, a
Content-Security-Policy, and the request's ``X-Request-Id`` (api/logs.py).

:func:`secured_send` adds them to an ASGI ``send`` (api/app.py ``with_security_headers``
wraps the whole process in it); :data:`HOLD_HEADER_LINES` is the same set already rendered
as HTTP/1.1 header lines, for the hold that api/hot_http.py writes to the socket itself.
"""

from __future__ import annotations

from typing import Any

from litestar.types import Message, Scope

from api.logs import REQUEST_ID_HEADER

SECURITY_HEADERS: list[tuple[str, str]] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    ("origin-agent-cluster", "?1"),
    ("strict-transport-security", "max-age=15552000; includeSubDomains"),
]
STRICT_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' data:; img-src 'self' data:; "
    "object-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "form-action 'self'; frame-ancestors 'self'"
)
# The OpenAPI UIs under /schema load packaged bundles (api/web/vendor) and no inline script
# (api/openapi.py): scripts stay 'self' only. Their bundles inject <style> elements (Scalar's
# CSS-in-JS), so styles there may be inline.
SCHEMA_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' data:; img-src 'self' data:; "
    "object-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'self'"
)
CSP = b"content-security-policy"
ENCODED_HEADERS = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
_STRICT_CSP = STRICT_CSP.encode()
_SCHEMA_CSP = SCHEMA_CSP.encode()
# The names a response may set itself (then the set leaves its own out).
SECURITY_NAMES = frozenset(name for name, _ in ENCODED_HEADERS) | {CSP}
# The set and the strict policy as header lines, in the order security_headers appends
# them: what a response under /api gets when it sets none of them itself.
HOLD_HEADER_LINES = b"".join(
    name + b": " + value + b"\r\n" for name, value in [*ENCODED_HEADERS, (CSP, _STRICT_CSP)]
)


async def security_headers(message: Message, scope: Scope) -> None:
    """The Helmet set on every HTTP response, errors from middleware included; a strict
    Content-Security-Policy everywhere but the OpenAPI UIs.

    Appended to the raw header list: Litestar's MutableScopeHeaders decodes and scans the
    whole list for every lookup, which cost more than the rest of a bare request."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", ()))
        present = {name.lower() for name, _ in headers}
        headers.extend(h for h in ENCODED_HEADERS if h[0] not in present)
        if CSP not in present:
            schema = scope.get("path", "").startswith("/schema")
            headers.append((CSP, _SCHEMA_CSP if schema else _STRICT_CSP))
        message["headers"] = headers


def secured_send(send: Any, scope: Any, rid: bytes) -> Any:
    """``send`` with the security headers and ``X-Request-Id: rid`` added to the
    response's start."""

    async def send_with_headers(message: Message) -> None:
        await security_headers(message, scope)
        if message["type"] == "http.response.start":
            message["headers"].append((REQUEST_ID_HEADER, rid))  # type: ignore[attr-defined]
        await send(message)

    return send_with_headers
