"""uvicorn's httptools protocol, with the lean hold (api/hot_hold.py) served below the ASGI
layer: ``onsale serve``'s HTTP protocol when ``HOT_HOLD`` is on.

Under the plain protocol a hold that the lean handler answers still paid for what every
ASGI response pays here: the process-wide wrapper that adds the security headers and the
request id (a closure and a header set per request), two ``send`` calls of ASGI messages,
the ``receive`` of a body the parser already holds, and uvicorn's ``send``, which checks
every header name and value against two regular expressions (16 headers here: ~20 us of
a ~95 us hold, and ~27 % of a sold-out refusal, by py-spy; docs/performance.md). uvicorn
has no setting for any of that, and a response's headers cannot reach the socket but
through that ``send``.

So for ``POST /api/orders`` the protocol starts, in place of the app, the lean handler
with the parser's body and a ``direct`` writer. An answer the handler has pre-encoded
(api/present.py ``EncodedJSON``: the 201, a replay, every refusal of the service) is
written here as uvicorn would write it: the same status line, uvicorn's default headers
(``date``, ``server``), the response's own, the security set and the request id in the
order api/headers.py appends them, ``connection: close`` when the connection is not kept
alive, then the body, in one write; the response's own headers are still checked with
uvicorn's expressions (the rest are constants). Everything else goes through the ASGI
path as before, inside the same task: a request the lean handler does not serve goes to
the app behind it, an error answer through uvicorn's ``send`` (so every byte but the
direct answers is uvicorn's own). The cycle is completed as uvicorn's ``send`` completes
it (keep-alive, pipelining, the access log line, the disconnect of a client that left).

tests/integration/test_hot_hold_differential.py compares a server on this protocol with
one that serves holds through Litestar, byte for byte but ``date`` and the request id.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from prometheus_client import Counter
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from api.headers import HOLD_HEADER_LINES, SECURITY_NAMES, secured_send
from api.hot_hold import HOLD_PATHS, HotHold
from api.http_protocol import HttpProtocol
from api.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_of
from api.present import EncodedJSON

_RID = REQUEST_ID_HEADER + b": "
WRITTEN = Counter(
    "onsale_hot_hold_written",
    "Answers of the lean hold that the HTTP protocol wrote to the socket itself",
)


def hot_hold_of(app: Any) -> HotHold | None:
    """The lean hold that api/app.py ``app_from_env`` names on its app; None for any
    other app, or one uvicorn wrapped (``proxy_headers``, trace logging)."""
    hot = getattr(app, "onsale_hot", None)
    return hot if isinstance(hot, HotHold) else None


class HotHttpProtocol(HttpProtocol):
    """uvicorn's ``HttpToolsProtocol`` (with the shutdown notice of api/http_protocol.py),
    starting the lean hold for ``POST /api/orders``."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.hot = hot_hold_of(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        hot = self.hot
        scope = cycle.scope
        if (
            hot is not None
            and app is self.app  # not uvicorn's 503 past limit_concurrency
            and scope["method"] == "POST"
            and scope["path"] in HOLD_PATHS
        ):
            app = partial(_hold, hot, cycle)
        super()._start_asgi_task(cycle, app)


async def _hold(
    hot: HotHold, cycle: RequestResponseCycle, scope: Any, receive: Any, send: Any
) -> None:
    """The hold as an ASGI app of one cycle (run by ``cycle.run_asgi``, which answers a
    failure with uvicorn's 500): the request id and security headers as api/app.py
    ``with_security_headers`` adds them, the body as the parser has it when whole."""
    rid = request_id_of(scope["headers"])
    REQUEST_ID.set(rid)
    body = None if cycle.more_body or cycle.waiting_for_100_continue else bytes(cycle.body)
    await hot.hold(
        scope, receive, secured_send(send, scope, rid), body, partial(_write, cycle, rid)
    )


def _write(cycle: RequestResponseCycle, rid: bytes, response: EncodedJSON) -> bool:
    """``response`` written to the cycle's transport as uvicorn's ``send`` would write its
    two messages (after api/headers.py's ``secured_send``), and the cycle completed; False
    (nothing done) when it must go through ``send`` after all: a response that sets a
    security header itself, a header uvicorn would refuse, a transport paused for writing."""
    if cycle.response_started or cycle.flow.write_paused:
        return False
    if cycle.disconnected:  # uvicorn's send drops both messages
        return True
    body = response.body
    lines = [STATUS_LINE[response.status_code]]
    for name, value in cycle.default_headers:
        lines += (name, b": ", value, b"\r\n")
    lines += (
        b"content-type: ",
        response.media_type_header,
        b"\r\ncontent-length: ",
        str(len(body)).encode(),
        b"\r\n",
    )
    for name, value in response.extra_headers:
        name = name.lower()
        if name in SECURITY_NAMES or name in _SPECIAL:
            return False
        if HEADER_RE.search(name) or HEADER_VALUE_RE.search(value):
            return False  # uvicorn's send raises: let it
        lines += (name, b": ", value, b"\r\n")
    if HEADER_VALUE_RE.search(response.media_type_header):
        return False
    lines += (HOLD_HEADER_LINES, _RID, rid, b"\r\n")
    if not cycle.keep_alive:
        lines.append(b"connection: close\r\n")
    lines += (b"\r\n", body)
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    if cycle.access_log:
        scope = cycle.scope
        cycle.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(scope),
            scope["method"],
            get_path_with_query_string(scope),
            scope["http_version"],
            response.status_code,
        )
    cycle.transport.write(b"".join(lines))
    WRITTEN.inc()
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


# Names uvicorn's send reads (framing, the connection): such a response goes through it.
_SPECIAL = frozenset({b"content-type", b"content-length", b"transfer-encoding", b"connection"})
