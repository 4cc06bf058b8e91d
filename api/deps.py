"""What handlers are given: the per-process resources, the services, the caller, paging.

The services are built once per process (``api.state.Resources``). Controllers off the
hot path receive them through Litestar's ``Provide`` (:data:`SERVICES`); the order
controller reaches them by item access instead, because resolving a ``Provide``
dependency costs ~5 us a request, which the hold path does not pay.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import Provide
from litestar.params import QueryParameter

from api.security import Principal, principal_of
from api.services.admin import AdminService
from api.services.auth import AuthService
from api.services.events import EventService
from api.services.orders import OrderService
from api.state import Resources

PageParam = QueryParameter(name="page", ge=1, le=100_000, default=1)
LimitParam = QueryParameter(name="limit", ge=1, le=100, default=20)


def resources(request: Request[Any, Any, Any]) -> Resources:
    # Item access: State's attribute lookup (``state.onsale``) costs ~2 us, and a hold
    # reaches the resources several times.
    res: Resources = request.app.state["onsale"]
    return res


def orders(request: Request[Any, Any, Any]) -> OrderService:
    service: OrderService = request.app.state["onsale"].orders
    return service


def caller(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _events(request: Request[Any, Any, Any]) -> EventService:
    return resources(request).events


def _admin(request: Request[Any, Any, Any]) -> AdminService:
    return resources(request).admin


def _auth(request: Request[Any, Any, Any]) -> AuthService:
    return resources(request).auth


SERVICES = {
    "events": Provide(_events, sync_to_thread=False),
    "admin": Provide(_admin, sync_to_thread=False),
    "auth": Provide(_auth, sync_to_thread=False),
    "who": Provide(caller, sync_to_thread=False),
    "client": Provide(client_address, sync_to_thread=False),
}
"""The dependencies a controller may declare by name (each controller registers them)."""
