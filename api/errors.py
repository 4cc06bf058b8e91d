"""Every error leaves the API as RFC 9457 problem+json, mapped here and only here."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.security import PasswordsBusy
from api.validation import field_of
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
}


class ApiError(HTTPException):
    """A refusal raised by a controller, with an optional machine-readable ``code``."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.code = code
        self.more = extra


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    out = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", "invalid value"))
            key = str(item.get("key") or "")
            if key in ("", "data"):
                key = field_of(message)
            if message == "'data'":
                message = "a JSON body is required"
            out.append(
                {
                    "field": key,
                    "message": message,
                    "source": item.get("source", "body"),
                }
            )
    return out


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = _validation_errors(exc)
    fields = ", ".join(e["field"] for e in errors)
    detail = f"invalid fields: {fields}" if fields else "the request is not valid"
    if not errors and "JSON" in str(exc.detail):
        detail = "the body is not valid JSON"
    return problem(request, 422, detail, errors=errors or None)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    extra: dict[str, Any] = {}
    if isinstance(exc, ApiError):
        extra = {"code": exc.code, **exc.more}
    detail = exc.detail if status < 500 else TITLES.get(status, "Error")
    return problem(request, status, detail, headers=exc.headers, **extra)


def handle_engine(request: Request[Any, Any, Any], exc: eng.EngineError) -> Response[Any]:
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
    return problem(request, status, exc.message, **extra)


def handle_bad_body(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Bodies that cannot even be parsed: bad UTF-8, absurd nesting."""
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
    eng.EngineError: handle_engine,
    UnicodeDecodeError: handle_bad_body,
    StoreUnavailable: handle_unavailable,
    PasswordsBusy: handle_busy,
    RedisConnectionError: handle_unavailable,
    RedisTimeoutError: handle_unavailable,
    RedisError: handle_unavailable,
    RecursionError: handle_bad_body,
    Exception: handle_unexpected,
}
