"""The one use of Litestar internals: handing a request its already-parsed JSON body.

``api.validation.strict_body`` decodes a body strictly before the handler runs; so that
Litestar does not decode it a second time, the value is stored where ``Request.json()``
caches a parsed body: the connection state shared by every ``Request`` built from the
scope (``request._connection_state.json``, Litestar 2.x; pyproject bounds it to <3).
tests/unit/test_litestar_seam.py pins that ``Request.json()`` returns what is stored here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request


def set_parsed_json(request: Request[Any, Any, Any], value: Any) -> None:
    """What ``Request.json()`` returns from now on, for every Request of this scope not
    yet asked for its body."""
    request._connection_state.json = value
