"""The OpenAPI document (``/schema/openapi.json``) a client generator can trust.

Every operation declares the answers it can give, in one place (:data:`ROUTE_ERRORS`
plus the rules of :func:`automatic_errors`), each error as RFC 9457
``application/problem+json`` with the real schema (:class:`api.schemas.Problem`) and its
``Retry-After`` header; Litestar's own ``400 {status_code, detail, extra}``, which the API
never sends (api/errors.py answers 422 problem+json), is not documented. The bearer
requirement is on the operations that need a token only (login, register and the public
reads need none), and a request body that refuses unknown fields says so
(``additionalProperties: false``).

:class:`OpenAPIDocs` applies this to every route as it is registered (Litestar's
``ReceiveRoutePlugin``), routes added later included: a new route gets the errors its
shape implies (401 if it needs a token, 404 and 422 with path parameters, 400, 413, 415
and 422 with a body, 503 always); what it refuses beyond those goes into ``ROUTE_ERRORS``.
tests/security/test_schemathesis.py runs schemathesis with every check against a live
server, so an answer that is not documented fails the build.

This module owns that error-response plugin and its route table. Beside it:
``api/openapi_structs.py`` (request and response bodies: the msgspec Struct schema
plugin), ``api/openapi_options.py`` (the automatic OPTIONS answer's ``Allow``, a Litestar 2
workaround :class:`OpenAPIDocs` applies to every route) and ``api/openapi_ui.py`` (the
Scalar and Swagger UI pages, re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar.config.app import AppConfig
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import InitPlugin
from litestar.plugins.base import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from api.errors import CODES, ENGINE_STATUS, PROBLEM, TITLES
from api.openapi_options import fix_options_allow
from api.openapi_structs import SCHEMA_PLUGINS, schema_of
from api.openapi_ui import ScalarUI, SwaggerUI, render_plugins
from api.schemas import PlaceOut, Problem
from api.security import PUBLIC_PATHS

__all__ = [
    "ACCEPT",
    "BEARER",
    "NO_BACKEND",
    "RETRY_AFTER",
    "ROUTE_ERRORS",
    "ROUTE_HEADERS",
    "ROUTE_RESPONSES",
    "SCHEMA_PLUGINS",
    "DocumentedOperation",
    "OpenAPIDocs",
    "ScalarUI",
    "SwaggerUI",
    "automatic_errors",
    "document_handler",
    "errors",
    "finish_operation",
    "fix_options_allow",
    "needs_auth",
    "operation_key",
    "plugins",
    "problem_response",
    "render_plugins",
    "schema_of",
]

BEARER = "BearerToken"
_PUBLIC = [re.compile(p) for p in PUBLIC_PATHS]

# What each status means here, and the ``code`` values it carries (beyond those listed,
# the services' own: api/services).
_MEANING = {
    400: "The body is not JSON (or not UTF-8, or nested too deeply).",
    401: "No token, or an invalid or expired one: log in again.",
    403: "The caller may not do this (role, ownership, admission).",
    404: "The resource does not exist (or the caller may not know it does).",
    409: "The resource's current state forbids the change.",
    413: "The body is larger than the server accepts (MAX_BODY_BYTES).",
    415: "The body is not sent as JSON: `Content-Type` must be `application/json` (or an "
    "`application/*+json` type); `Accept` says so.",
    422: "The request is well formed but invalid: `errors` names every field.",
    429: "Too many requests in the current window: retry after `Retry-After` seconds.",
    503: "A backend is unavailable or busy: retrying after `Retry-After` seconds is safe.",
}
_EXTRA_CODES = {400: ["invalid_json", "bad_body"], 503: ["redis_full", "busy"]}


def _codes_of(status: int) -> list[str]:
    codes = {CODES[status]} if status in CODES else set()
    codes.update(_EXTRA_CODES.get(status, ()))
    codes.update(exc.code for exc, s in ENGINE_STATUS.items() if s == status)
    return sorted(codes)


def problem_response(status: int) -> ResponseSpec:
    """The documented problem+json answer for ``status``."""
    codes = ", ".join(f"`{c}`" for c in _codes_of(status))
    meaning = _MEANING.get(status, TITLES.get(status, "Error"))
    return ResponseSpec(
        Problem,
        description=f"{meaning} Problem codes include {codes}." if codes else meaning,
        media_type=PROBLEM,
        generate_examples=False,
    )


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for a route handler: problem+json answers for these statuses."""
    return {status: problem_response(status) for status in statuses}


# The refusals of each operation beyond those its shape implies (automatic_errors): the
# rules of its service (api/services/*) and the engine's (api/errors.py maps both).
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "POST /api/auth/register": (403, 409, 429),  # ADMIN not self-assignable; e-mail taken
    "POST /api/auth/login": (401, 429),
    "GET /api/auth/profile": (404,),
    "POST /api/events": (403, 409, 429),
    "PUT /api/events/{event_id}": (403, 409),
    "DELETE /api/events/{event_id}": (403, 409),
    "POST /api/events/{event_id}/categories": (403, 409),
    "PUT /api/events/{event_id}/categories/{category_id}": (403, 409),
    "DELETE /api/events/{event_id}/categories/{category_id}": (403, 409),
    "POST /api/orders": (403, 404, 409, 429),  # admission; unknown event; sold out...
    "PUT /api/orders/{order_id}/confirm": (403, 409),
    "PUT /api/orders/{order_id}/extend": (403, 409),
    "PUT /api/orders/{order_id}/cancel": (403, 409),
    "PUT /api/events/{event_id}/queue": (403, 409),
    "DELETE /api/events/{event_id}/queue": (403, 409),
    "POST /api/events/{event_id}/queue/join": (403, 409, 429),
    "GET /api/events/{event_id}/queue/me": (409, 429),  # the heartbeat is rate limited
    "DELETE /api/events/{event_id}/queue/me": (409,),
    "POST /api/events/{event_id}/waitlist": (403, 409),
    "DELETE /api/events/{event_id}/waitlist/me": (409,),
    "GET /api/admin/orders": (403,),
    "GET /api/admin/stats": (403,),
    "GET /api/admin/orders.csv": (403,),
    "GET /api/admin/events/{event_id}/sales": (403,),
    "GET /api/admin/events/{event_id}/orders.csv": (403,),
    "POST /api/webhooks": (403, 404, 409),  # eventoId of an unknown event
    "GET /api/webhooks/{webhook_id}": (403,),
    "DELETE /api/webhooks/{webhook_id}": (403,),
    "POST /api/webhooks/{webhook_id}/test": (403, 409),
    "GET /api/webhooks/{webhook_id}/deliveries": (403,),
}

# Answers that are not problems (and not the handler's own success response).
ROUTE_RESPONSES: dict[str, dict[int, ResponseSpec]] = {
    "POST /api/events/{event_id}/queue/join": {
        200: ResponseSpec(PlaceOut, description="Already in the queue: the caller's place.")
    },
    "GET /health/ready": {
        503: ResponseSpec(
            dict[str, Any],
            description="Not ready: Redis, its scripts or the store failed their check "
            "(`checks` says which).",
            generate_examples=False,
        )
    },
}
# Operations that answer without touching Redis or the store.
NO_BACKEND = {"GET /health/live", "GET /health/ready"}


def _header(description: str, schema: Schema, *, required: bool) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema, description=description, required=required)


RETRY_AFTER = _header(
    "Seconds to wait before retrying.", Schema(type=OpenAPIType.INTEGER), required=True
)
ACCEPT = _header(
    "The media type the body must be sent as.",
    Schema(type=OpenAPIType.STRING, enum=["application/json"]),
    required=True,
)
CHALLENGE = _header(
    'How to authenticate (RFC 9110): `Bearer realm="onsale"`, with `error="invalid_token"` '
    "when the token sent was refused (RFC 6750).",
    Schema(type=OpenAPIType.STRING),
    required=True,
)
# Success-response headers by operation and status.
ROUTE_HEADERS: dict[str, dict[str, dict[str, OpenAPIHeader]]] = {
    "POST /api/orders": {
        "201": {
            "Idempotent-Replayed": _header(
                "`true` when the order is the one an earlier request with the same "
                "`Idempotency-Key` created (nothing new was held); absent otherwise.",
                Schema(type=OpenAPIType.STRING, enum=["true"]),
                required=False,
            )
        }
    }
}
_RESERVED_PARAMS = {"self", "request", "data", "state", "scope", "headers", "cookies", "query"}
_RESERVED_PARAMS |= {"socket", "body"}


def operation_key(method: str, path: str) -> str:
    return f"{method.upper()} {path or '/'}"


def needs_auth(handler: HTTPRouteHandler, path: str) -> bool:
    """As the JWT middleware decides: not opted out, not under a public path."""
    if handler.opt.get("exclude_from_auth"):
        return False
    return not any(p.search(path) for p in _PUBLIC)


def automatic_errors(handler: HTTPRouteHandler, route: HTTPRoute) -> set[int]:
    """The errors a route's shape implies: a backend may be down (503); a token may be
    missing or invalid (401); an id in the path may be malformed (422) or unknown (404);
    a body may not be JSON (400), not sent as JSON (415), too large (413) or invalid
    (422); a query or header parameter may be invalid (422)."""
    found: set[int] = set()
    if needs_auth(handler, route.path):
        found.add(401)
    path_names = set(route.path_parameters)
    if path_names:
        found |= {404, 422}
    params = set(handler.parsed_fn_signature.parameters)
    if "data" in params:
        found |= {400, 413, 415, 422}
    dependencies = set(handler.resolve_dependencies())
    if params - _RESERVED_PARAMS - dependencies - path_names:
        found.add(422)
    return found


@dataclass
class DocumentedOperation(Operation):
    """An operation as Litestar builds it, then: Litestar's ValidationException answer
    (``{status_code, detail, extra}``, never sent) removed, ``Retry-After`` on the
    problems that carry it (``Accept`` on the 415, ``WWW-Authenticate`` on the 401), and
    the success headers of :data:`ROUTE_HEADERS`."""

    def __post_init__(self) -> None:
        finish_operation(self, {})


def finish_operation(op: Operation, headers: Mapping[str, Mapping[str, OpenAPIHeader]]) -> None:
    responses = op.responses or {}
    for status, response in list(responses.items()):
        if not isinstance(response, OpenAPIResponse):
            continue
        content = response.content or {}
        phantom = content.get("application/json")
        schema = getattr(phantom, "schema", None)
        if isinstance(schema, Schema) and schema.required == ["detail", "status_code"]:
            del responses[status]  # Litestar's default, replaced by the API's problems
            continue
        extra: dict[str, Any] = dict(headers.get(status, {}))
        if PROBLEM in content and status in ("429", "503"):
            extra["Retry-After"] = RETRY_AFTER
        if PROBLEM in content and status == "415":
            extra["Accept"] = ACCEPT
        if PROBLEM in content and status == "401":
            extra["WWW-Authenticate"] = CHALLENGE
        if extra:
            response.headers = {**(response.headers or {}), **extra}


def _operation_class(headers: Mapping[str, Mapping[str, OpenAPIHeader]]) -> type[Operation]:
    if not headers:
        return DocumentedOperation

    @dataclass
    class WithHeaders(DocumentedOperation):
        def __post_init__(self) -> None:
            finish_operation(self, headers)

    return WithHeaders


def document_handler(handler: HTTPRouteHandler, route: HTTPRoute) -> None:
    """Declare a handler's errors, security and headers (idempotent)."""
    keys = [operation_key(m, route.path_format) for m in sorted(handler.http_methods)]
    statuses = automatic_errors(handler, route)
    if not NO_BACKEND.intersection(keys):
        statuses.add(503)
    responses: dict[int, ResponseSpec] = {}
    headers: dict[str, dict[str, OpenAPIHeader]] = {}
    for key in keys:
        statuses.update(ROUTE_ERRORS.get(key, ()))
        responses.update(ROUTE_RESPONSES.get(key, {}))
        headers.update(ROUTE_HEADERS.get(key, {}))
    responses.update(handler.responses or {})  # the handler's own declarations win
    for status in sorted(statuses):
        responses.setdefault(status, problem_response(status))
    handler.responses = dict(sorted(responses.items()))
    if needs_auth(handler, route.path):
        security = list(handler.security or [])
        if {BEARER: []} not in security:
            security.append({BEARER: []})
        handler.security = security
    handler.operation_class = _operation_class(headers)


class OpenAPIDocs(InitPlugin, ReceiveRoutePlugin):
    """Documents every HTTP route as it is registered (see the module docstring)."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # The JWT backend's on_app_init makes its bearer requirement global (document
        # level); it is declared per operation instead (document_handler).
        if app_config.openapi_config is not None:
            app_config.openapi_config.security = None
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        if isinstance(route, HTTPRoute):
            fix_options_allow(route)
            for handler in route.route_handlers:
                if handler.resolve_include_in_schema():
                    document_handler(handler, route)


def plugins() -> list[Any]:
    """The Litestar plugins of the OpenAPI document."""
    return [OpenAPIDocs(), *SCHEMA_PLUGINS]
