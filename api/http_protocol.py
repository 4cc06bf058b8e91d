"""uvicorn's httptools protocol, telling the app when the graceful shutdown begins:
``onsale serve``'s HTTP protocol (api/hot_http.py's lean hold is built on it).

On SIGINT or SIGTERM uvicorn stops accepting, calls ``shutdown()`` on every open
connection (an idle one is closed, one in a request is marked not to be kept alive), waits
up to ``timeout_graceful_shutdown`` for the requests in flight to be answered, and only then
sends the ASGI lifespan's shutdown, the app's first word of it (the ASGI spec has no
earlier notice; a ``lifespan.shutdown.notice`` was proposed, never adopted). A request
that waits for something to happen rather than for work to finish, a Socket.IO long-poll
GET parked on its session, is answered only when that happens: up to Engine.IO's next ping
(25 s), so one idle or vanished poller held every shutdown for the whole timeout.

So each connection's ``shutdown()`` also calls the app's shutdown notice (which acts
once), the ``onsale_shutdown_notice`` that api/app.py ``app_from_env`` names on its app
(Socket.IO's :meth:`~api.realtime.socketio.SocketIOGateway.shutdown_notice`: every
Engine.IO session closed, its parked poll answered). Requests that are working (a hold
waiting for Redis) are not touched: uvicorn still waits for their answers. A poll whose
connection is already gone is not among the connections uvicorn tells; the gateway ends
such a poll when its client leaves. The notice costs nothing per request: it is looked up
at shutdown only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.middleware.message_logger import MessageLoggerMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_UVICORN_WRAPPERS = (ProxyHeadersMiddleware, MessageLoggerMiddleware)
"""What uvicorn may wrap the app in (``proxy_headers``, trace logging); each keeps it as
``.app``."""


def shutdown_notice_of(app: Any) -> Callable[[], None] | None:
    """The shutdown notice named on the app that uvicorn loaded, under uvicorn's own
    wrappers; None for an app without one."""
    while isinstance(app, _UVICORN_WRAPPERS):
        app = app.app
    notice = getattr(app, "onsale_shutdown_notice", None)
    return notice if callable(notice) else None


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` whose ``shutdown()`` tells the app that the graceful
    shutdown has begun (every connection's does; the notice acts on the first)."""

    def shutdown(self) -> None:
        super().shutdown()
        notice = shutdown_notice_of(self.app)
        if notice is not None:
            notice()
