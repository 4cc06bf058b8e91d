"""The one place that uses Litestar internals: handing a request its already-parsed JSON
body, and the two functions api/hot_hold.py shares with Litestar's router and exception
middleware (``is_valid_host``, ``get_exception_handler``).

``api.validation.strict_body`` decodes a body strictly before the handler runs; so that
Litestar does not decode it a second time, the value is stored where ``Request.json()``
caches a parsed body: the connection state shared by every ``Request`` built from the
scope (``request._connection_state.json``, Litestar 2.x; pyproject bounds it to <3).
tests/unit/test_litestar_seam.py pins that ``Request.json()`` returns what is stored here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar._asgi.utils import is_valid_host
from litestar.middleware._internal.exceptions.middleware import get_exception_handler

# api/hot_hold.py, the lean hold in front of Litestar, answers as Litestar would: it checks
# the Host header as Litestar's router does (else Litestar's 400), and picks the handler of
# an exception from the route's handlers as Litestar's exception middleware does.
__all__ = ["get_exception_handler", "is_valid_host", "set_parsed_json"]


def set_parsed_json(request: Request[Any, Any, Any], value: Any) -> None:
    """What ``Request.json()`` returns from now on, for every Request of this scope not
    yet asked for its body."""
    request._connection_state.json = value
