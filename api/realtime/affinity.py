"""Engine.IO session affinity across the workers of ``onsale serve --workers N``.

The workers share one listening socket, so the requests of one Engine.IO session (the
long-polling GETs and POSTs, then the WebSocket upgrade) land on any worker, and only the
worker that made the session knows it. So, with more than one worker:

* every worker has a tag (its pid in hex and four random hex digits) and every Engine.IO
  session id it makes starts with ``<tag>.`` (:func:`api.realtime.engineio_seam.tagged_server`);
* every worker listens on a Unix socket, ``DATA_DIR/run/eio-<tag>.sock`` (mode 0600 in a
  0700 directory; removed on shutdown), for connections forwarded by the others;
* a ``/socket.io/`` request whose ``sid`` carries another worker's tag is forwarded to
  that worker: the ASGI scope (its JSON-safe parts, the client address included, so
  per-address caps and logs see the real client), then every ASGI message both ways, as
  msgpack frames with a 4-byte length. A long-poll is one forwarded request; an upgraded
  WebSocket is one forwarded connection pumped both ways for its lifetime, with the
  owner's writes flow-controlled by the front worker's reads, so Engine.IO's backpressure
  (api/realtime/socketio.py) still holds;
* a request without a ``sid`` (the handshake, or a WebSocket-only client's connection) is
  served where it lands, which makes that worker the session's owner;
* a tag with no live worker behind it (no socket file, connection refused) is served
  locally, where Engine.IO answers what it answers for any unknown session: 400 and its
  JSON body (a WebSocket: refused before the accept), and the client reconnects. An owner
  that goes away mid-request is answered the same way, or its WebSocket closed (1012).

With one worker none of this exists: no tag, no socket, no dispatch (api/realtime/socketio.py).
Forwarded requests are counted in ``onsale_socketio_forwarded_total``; the cost of a
forwarded poll or frame is in docs/scaling.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from api.metrics import SOCKETIO_FORWARDED
from api.realtime import engineio_seam as seam

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SID_SEPARATOR = "."
SOCKET_PREFIX = "eio-"
TAG = re.compile(r"[0-9a-f]{1,16}-[0-9a-f]{4}")
"""A worker tag. Anything else in a ``sid`` is not a tag, and never names a socket path."""
MAX_FRAME = 8 * 1024 * 1024  # far above any ASGI message of a 64 KiB Engine.IO packet
SCOPE_KEYS = (
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "subprotocols",
)
"""What a forwarded connection's scope keeps: every part Engine.IO (and a log line) reads."""
OWNER_GONE_CLOSE = 1012  # "service restart": the client reconnects
SHUTDOWN_WAIT_S = 1.0

_HEADER = struct.Struct(">I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_COUNTED = {
    (transport, result): SOCKETIO_FORWARDED.labels(transport, result)
    for transport in ("polling", "websocket")
    for result in ("forwarded", "owner_gone")
}


def worker_tag() -> str:
    return f"{os.getpid():x}-{secrets.token_hex(2)}"


def socket_dir(data_dir: Path) -> Path:
    """``DATA_DIR/run``; when a socket path there would pass the 107 bytes a Unix socket
    address allows, a directory in the temporary directory named after it (the same for
    every worker of one DATA_DIR)."""
    run = (data_dir / "run").resolve()
    if len(os.fsencode(run / f"{SOCKET_PREFIX}{'f' * 16}-ffff.sock")) <= 100:
        return run
    digest = hashlib.sha256(os.fsencode(run)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"onsale-eio-{digest}"


def session_tag(query_string: bytes) -> str | None:
    """The worker tag of a request's ``sid`` query parameter; None without a tagged one."""
    for part in query_string.split(b"&"):
        if part.startswith(b"sid="):
            tag, sep, _ = part[4:].partition(SID_SEPARATOR.encode())
            text = tag.decode("ascii", "replace")
            return text if sep and TAG.fullmatch(text) else None
    return None


def _sid(scope: Scope) -> str:
    query: bytes = scope.get("query_string", b"")
    for part in query.split(b"&"):
        if part.startswith(b"sid="):
            return part[4:].decode("ascii", "replace")
    return ""


class Affinity:
    """One worker's side of the affinity: its tag, its listener, its dispatch."""

    def __init__(self, data_dir: Path, tag: str | None = None) -> None:
        self.tag = tag or worker_tag()
        self.sid_prefix = self.tag + SID_SEPARATOR
        self.directory = socket_dir(data_dir)
        self.path = self.socket_of(self.tag)
        self._local: ASGIApp | None = None
        self._server: asyncio.AbstractServer | None = None
        self._served: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    def socket_of(self, tag: str) -> Path:
        return self.directory / f"{SOCKET_PREFIX}{tag}.sock"

    def wrap(self, engineio: ASGIApp, other: ASGIApp) -> tuple[ASGIApp, ASGIApp]:
        """``engineio`` (this worker's Engine.IO app) behind the dispatch on the session's
        tag, and ``other`` (the app the lifespan goes to) with the listener started and
        stopped by its lifespan."""
        self._local = engineio

        async def with_listener(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                await other(scope, receive, send)
                return

            async def lifespan_receive() -> Message:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.start()
                elif message["type"] == "lifespan.shutdown":
                    await self.stop()
                return message

            await other(scope, lifespan_receive, send)

        return self.dispatch, with_listener

    # -- the front: a request that landed on this worker --------------------------------

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        local = self._local
        assert local is not None, "Affinity.wrap first"
        tag = session_tag(scope.get("query_string", b""))
        if tag is None or tag == self.tag:
            await local(scope, receive, send)
            return
        transport = "websocket" if scope["type"] == "websocket" else "polling"
        try:
            reader, writer = await asyncio.open_unix_connection(self.socket_of(tag))
        except OSError:  # no such worker (any more): Engine.IO's unknown session, here
            _COUNTED[transport, "owner_gone"].inc()
            await local(scope, receive, send)
            return
        _COUNTED[transport, "forwarded"].inc()
        await forward(scope, receive, send, reader, writer)

    # -- the owner: connections forwarded to this worker ---------------------------------

    async def start(self) -> None:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.stat().st_uid != os.getuid():
            raise RuntimeError(f"{directory} belongs to another user: not serving sockets there")
        directory.chmod(0o700)
        self._remove_stale()
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)
        log.debug("engine.io affinity: worker %s on %s", self.tag, self.path)

    async def stop(self) -> None:
        """No more forwarded connections; the ones open are closed (their fronts answer
        their clients, which reconnect), and the socket file goes."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the last worker out removes the directory
            self.directory.rmdir()
        for writer in self._served.values():
            writer.close()
        tasks = list(self._served)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)
            for task in pending:  # e.g. a long-poll parked in Engine.IO
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _remove_stale(self) -> None:
        """Socket files of workers that died without removing theirs (the pid is gone)."""
        for path in self.directory.glob(f"{SOCKET_PREFIX}*.sock"):
            tag = path.name[len(SOCKET_PREFIX) : -len(".sock")]
            if not TAG.fullmatch(tag):
                continue
            try:
                os.kill(int(tag.split("-")[0], 16), 0)
            except ProcessLookupError:
                path.unlink(missing_ok=True)
            except (PermissionError, OverflowError, ValueError):
                continue

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._served[task] = writer
        try:
            scope = await read_message(reader)
            if scope is None or scope.get("type") not in ("http", "websocket"):
                return
            local = self._local
            assert local is not None
            await local(_scope_from_wire(scope), *_owner_channel(scope["type"], reader, writer))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("engine.io affinity: a forwarded connection failed")
        finally:
            self._served.pop(task, None)
            writer.close()


async def forward(
    scope: Scope,
    receive: Receive,
    send: Send,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Pump one ASGI connection to the owner's listener and its answers back, until the
    owner closes; an owner gone before answering is an unknown session."""
    websocket = scope["type"] == "websocket"
    answered = closed = client_gone = False

    async def upstream() -> None:
        nonlocal client_gone
        while True:
            message = await receive()
            write_message(writer, message)
            if message["type"] in ("http.disconnect", "websocket.disconnect"):
                client_gone = True
            await writer.drain()
            if client_gone:
                return

    write_message(writer, _scope_to_wire(scope))
    up = asyncio.create_task(upstream())
    try:
        while (message := await read_message(reader)) is not None:
            kind = message.get("type")
            if kind in ("http.response.start", "websocket.accept", "websocket.close"):
                answered = True
            closed = closed or kind == "websocket.close"
            await send(message)
    finally:
        up.cancel()
        with contextlib.suppress(BaseException):
            await up
        writer.close()
    if not answered:
        await _unknown_session(scope, send)
    elif websocket and not closed and not client_gone:
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": OWNER_GONE_CLOSE})


async def _unknown_session(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close"})
        return
    status, headers, body = seam.unknown_session(_sid(scope))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _owner_channel(
    kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[Receive, Send]:
    """The ASGI ``receive`` and ``send`` of a forwarded connection, on the owner."""
    lock = asyncio.Lock()
    ended = False
    gone: Message = (
        {"type": "websocket.disconnect", "code": 1006}
        if kind == "websocket"
        else {"type": "http.disconnect"}
    )

    async def receive() -> Message:
        nonlocal ended
        async with lock:
            if not ended:
                message = await read_message(reader)
                if message is not None:
                    return message
                ended = True
        return dict(gone)

    async def send(message: Message) -> None:
        if writer.is_closing():
            return  # the front went away; receive() says so
        write_message(writer, message)
        with contextlib.suppress(OSError):
            await writer.drain()

    return receive, send


# -- the wire: length-prefixed msgpack frames ---------------------------------------------


def write_message(writer: asyncio.StreamWriter, message: Message) -> None:
    body = _encode(message)
    writer.write(_HEADER.pack(len(body)) + body)


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next frame's message; None at the end of the stream or on a broken frame."""
    try:
        (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if size > MAX_FRAME:
            return None
        message = _decode(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, OSError, msgspec.DecodeError):
        return None
    return message if isinstance(message, dict) else None


def _scope_to_wire(scope: Scope) -> Scope:
    return {key: scope[key] for key in SCOPE_KEYS if key in scope}


def _scope_from_wire(wire: Scope) -> Scope:
    scope = dict(wire)
    scope["headers"] = [(bytes(k), bytes(v)) for k, v in wire.get("headers", ())]
    for key in ("client", "server"):
        if isinstance(wire.get(key), list):
            scope[key] = tuple(wire[key])
    scope.setdefault("query_string", b"")
    scope.setdefault("path", "/")
    return scope
