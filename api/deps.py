"""Small helpers every controller uses: the per-process resources, the caller, paging."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.params import Parameter

from api.errors import ApiError
from api.security import Principal, principal_of
from api.state import Resources

PageParam = Parameter(query="page", ge=1, le=100_000, default=1)
LimitParam = Parameter(query="limit", ge=1, le=100, default=20)


def resources(request: Request[Any, Any, Any]) -> Resources:
    # Item access: State's attribute lookup (``state.onsale``) costs ~2 us, and a hold
    # reaches the resources several times.
    res: Resources = request.app.state["onsale"]
    return res


def caller(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def rate_limit(request: Request[Any, Any, Any], scope: str, subject: str) -> None:
    retry_after = await resources(request).limiter.hit(scope, subject)
    if retry_after is not None:
        raise ApiError(
            429,
            f"too many requests: try again in {retry_after}s",
            code="rate_limited",
            headers={"Retry-After": str(retry_after)},
        )
