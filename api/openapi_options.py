"""A Litestar 2 workaround: the ``Allow`` header of the automatic OPTIONS answer when
handlers of one path are registered separately (:func:`fix_options_allow`, applied to every
route as it is registered by ``api.openapi.OpenAPIDocs``). Gone with Litestar 3.
"""

from __future__ import annotations

from typing import Any

from litestar.routes import HTTPRoute


def fix_options_allow(route: HTTPRoute) -> None:
    """Litestar 2's automatic OPTIONS answer lists the methods of the route it was made
    for; when handlers of the same path are registered separately, the merged route keeps
    the first route's OPTIONS handler, and ``Allow`` misses methods (litestar-org/litestar
    #4169, fixed in Litestar 3 only). Point that handler at the merged route."""
    for handler in route.route_handlers:
        fn = getattr(handler.fn, "__func__", handler.fn)
        code = getattr(fn, "__code__", None)
        if handler.http_methods != {"OPTIONS"} or code is None:
            continue
        if code.co_name != "options_handler" or code.co_freevars != ("self",):
            continue
        closure: tuple[Any, ...] = getattr(fn, "__closure__", None) or ()
        if len(closure) != 1:
            continue
        cell = closure[0]
        if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
            cell.cell_contents = route
