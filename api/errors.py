"""Every error leaves the API as RFC 9457 problem+json, mapped here and only here: the
services' refusals (api.services.errors), the engine's, Litestar's own (validation, auth,
routing) and backends that cannot be reached."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.security import PasswordsBusy
from api.services import errors as svc
from api.validation import InvalidFields, InvalidJSON, field_of, plain_message, summary
from engine import errors as eng
from persistence.errors import StoreUnavailable

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# The ``code`` of a problem raised without one (Litestar's own: routing, auth, limits).
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}

ENGINE_STATUS: dict[type[eng.EngineError], int] = {
    eng.InvalidRequest: 422,
    eng.EventNotFound: 404,
    eng.EventNotOnSale: 409,
    eng.LimitExceeded: 422,
    eng.CategoryNotFound: 404,
    eng.SoldOut: 409,
    eng.OrderNotFound: 404,
    eng.OrderExpired: 409,
    eng.OrderCancelled: 409,
    eng.OrderAlreadyConfirmed: 409,
    eng.BelowCommitted: 409,
    eng.CategoryInUse: 409,
    eng.OrderIdConflict: 409,
    eng.EventBusy: 409,
    eng.IdempotencyKeyReused: 422,
    eng.EventPast: 409,
    eng.OrderRetired: 409,
    eng.BuyerLimit: 409,
    eng.StockAvailable: 409,
    eng.WaitlistDuplicate: 409,
    eng.NotInWaitlist: 404,
    eng.ExtensionRefused: 409,
    eng.QueueNotFound: 404,
    eng.QueueNotStarted: 409,
    eng.NotInQueue: 404,
    eng.QueueAlreadyOpen: 409,
    eng.AdmissionRequired: 403,
    eng.AdmissionInvalid: 403,
    eng.AdmissionExpired: 403,
    eng.AdmissionUsed: 403,
}


SERVICE_STATUS: dict[type[svc.ServiceError], int] = {
    svc.Invalid: 422,
    svc.Unauthenticated: 401,
    svc.Forbidden: 403,
    svc.NotFound: 404,
    svc.Conflict: 409,
    svc.RateLimited: 429,
    svc.Unavailable: 503,
}


def problem_body(path: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The problem+json document of an error of the request to ``path``."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    body.setdefault("code", CODES.get(status, "error"))  # every problem has one
    return body


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = problem_body(request.url.path, status, detail, **extra)
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    """Litestar's own validation errors (query, path, header parameters), in plain words."""
    out = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            raw = str(item.get("message", "invalid value"))
            key = str(item.get("key") or "")
            if key in ("", "data"):
                key = field_of(raw)
            message = "a JSON body is required" if raw == "'data'" else plain_message(key, raw)
            out.append({"field": key, "message": message, "source": item.get("source", "body")})
    return out


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = exc.errors if isinstance(exc, InvalidFields) else _validation_errors(exc)
    return problem(request, 422, summary(errors), code="validation_failed", errors=errors or None)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    detail = exc.detail if status < 500 else TITLES.get(status, "Error")
    headers = exc.headers
    if status == 401:
        challenge = REFUSED_CHALLENGE if detail in _REFUSED_DETAILS else BEARER_CHALLENGE
        headers = {**(headers or {}), WWW_AUTHENTICATE: challenge}
        detail = _UNAUTHORIZED.get(detail, detail)
    return problem(request, status, detail, headers=headers)


# Every 401 says how to authenticate (RFC 9110 section 15.5.2): the Bearer scheme, and
# ``error="invalid_token"`` when the token sent was refused (RFC 6750 section 3).
WWW_AUTHENTICATE = "WWW-Authenticate"
BEARER_CHALLENGE = 'Bearer realm="onsale"'
REFUSED_CHALLENGE = 'Bearer realm="onsale", error="invalid_token"'
_REFUSED_DETAILS = frozenset(
    {"Invalid token", "Unauthorized", "invalid token", "the account no longer exists"}
)


# Litestar's JWT refusals, said the way a client developer reads them.
_UNAUTHORIZED = {
    "No JWT token found in request header": (
        "authentication required: send Authorization: Bearer <token>"
    ),
    "Invalid token": "the token is invalid or has expired: log in again",
    "Unauthorized": "the token is invalid or has expired: log in again",
}


def service_problem(
    path: str, exc: svc.ServiceError
) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """A service's refusal of a request to ``path``: (status, problem body, headers).
    :func:`handle_service` answers it through Litestar; the hold answers it pre-encoded
    (api/controllers/orders.py ``hold_response``, for both the route and api/hot_hold.py)."""
    status = next((SERVICE_STATUS[t] for t in type(exc).__mro__ if t in SERVICE_STATUS), 409)
    extra: dict[str, Any] = {"code": exc.code, **exc.extra}
    if isinstance(exc, svc.Invalid) and exc.fields:
        extra["errors"] = [
            {"field": name, "message": message, "source": "body"}
            for name, message in exc.fields.items()
        ]
    headers = None
    if isinstance(exc, svc.Unavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 401:
        headers = {WWW_AUTHENTICATE: BEARER_CHALLENGE}
    detail = exc.message if status < 500 else TITLES.get(status, "Error")
    return status, problem_body(path, status, detail, **extra), headers


def handle_service(request: Request[Any, Any, Any], exc: svc.ServiceError) -> Response[Any]:
    status, body, headers = service_problem(request.url.path, exc)
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def engine_problem(path: str, exc: eng.EngineError) -> tuple[int, dict[str, Any]]:
    """The engine's refusal of a request to ``path``: (status, problem body).
    :func:`handle_engine` answers it through Litestar; the hold answers it pre-encoded
    (api/controllers/orders.py ``hold_response``)."""
    status = ENGINE_STATUS.get(type(exc), 409)
    extra: dict[str, Any] = {"code": exc.code}
    for key, value in exc.details.items():
        if key == "category":
            extra["categoriaId"] = value
        elif key == "available":
            extra["disponible"] = value
        elif key == "order":
            extra["estado"] = getattr(value, "status", None)
        elif isinstance(value, str | int | float | None):
            extra[key] = value
    return status, problem_body(path, status, exc.message, **extra)


def handle_engine(request: Request[Any, Any, Any], exc: eng.EngineError) -> Response[Any]:
    status, body = engine_problem(request.url.path, exc)
    return Response(body, status_code=status, media_type=PROBLEM)


def handle_bad_body(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Bodies that cannot even be parsed: not JSON (400 per RFC 9110: 422 is for JSON
    whose fields are invalid), bad UTF-8, absurd nesting."""
    if isinstance(exc, InvalidJSON):
        return problem(
            request, 400, f"the body is not valid JSON: {exc.reason}", code="invalid_json"
        )
    reason = "nested too deeply" if isinstance(exc, RecursionError) else "not valid UTF-8 JSON"
    return problem(request, 400, f"the body is {reason}", code="bad_body")


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Redis or the store cannot be reached: a clean 503 the client may retry."""
    log.warning("backend unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "a backend is unavailable; retry shortly",
        code="unavailable",
        headers={"Retry-After": "1"},
    )


def is_redis_full(exc: Exception) -> bool:
    """Redis at its ``maxmemory`` refused a write (``-OOM``; Redis 6.2 wraps it in the
    script's error). The scripts check before their first write: nothing was written."""
    return isinstance(exc, OutOfMemoryError) or "OOM command not allowed" in str(exc)


def handle_redis(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if not is_redis_full(exc):
        return handle_unavailable(request, exc)
    log.error("Redis is full (maxmemory) on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "the service is at capacity; retry shortly",
        code="redis_full",
        headers={"Retry-After": "5"},
    )


def handle_busy(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return problem(
        request,
        503,
        "too many logins at once; retry shortly",
        code="busy",
        headers={"Retry-After": "2"},
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, 500, "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: handle_validation,
    HTTPException: handle_http,
    svc.ServiceError: handle_service,
    eng.EngineError: handle_engine,
    UnicodeDecodeError: handle_bad_body,
    InvalidJSON: handle_bad_body,
    StoreUnavailable: handle_unavailable,
    PasswordsBusy: handle_busy,
    RedisConnectionError: handle_unavailable,
    RedisTimeoutError: handle_unavailable,
    RedisError: handle_redis,
    RecursionError: handle_bad_body,
    Exception: handle_unexpected,
}
