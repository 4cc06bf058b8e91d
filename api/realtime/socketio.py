"""Socket.IO (Engine.IO 4 / Socket.IO 5) at ``/socket.io/``: a second transport of the hub.

The original system's clients spoke Socket.IO (``socket.emit('join:event', {eventId})``,
``socket.on('ticket:stock-update', (data) => ...)``). python-socketio's ASGI server speaks
the protocol (handshake, long-polling, the WebSocket upgrade, pings); this module only turns
each Socket.IO connection into a hub :class:`~api.realtime.client.Client`, so rooms,
authorization, snapshots, replay since a stream id, conflation and the per-socket message
budget are the ones ``/ws`` has, fed by the same per-process
:class:`~engine.feed.FeedTailer`. What it needs of the libraries' internals is in
:mod:`api.realtime.engineio_seam`.

Wire mapping: a hub frame ``{"event", "data", "id"}`` becomes the Socket.IO event ``event``
whose first argument is ``data``, unchanged, and whose second argument is the stream id
when the frame has one. JavaScript handlers written as ``(data) => ...`` ignore the
second argument; a client that resumes reads it as ``(data, id) => ...`` and passes the
last one as ``join:event {eventId, since}``. Replies the hub makes (``joined``, ``left``,
``authenticated``, ``error``) have no id and arrive with one argument.

With ``--workers N`` (N > 1) a session's requests reach the worker that owns it whichever
worker they land on (:mod:`api.realtime.affinity`), so long-polling works unchanged.

Backpressure: a connection's outbox is drained by one task that hands Engine.IO a batch
and waits until Engine.IO's queue for that connection is empty again (its WebSocket writer
took the batch, or a long-poll collected it) before taking the next. A slow reader's
backlog therefore stays in the hub's bounded, conflating outbox, never in Engine.IO's
unbounded queue; on outbox overflow the transport is closed, which Socket.IO clients treat
as a network failure and reconnect from (``since`` resumes).

Shutdown: every session is closed as the server's graceful shutdown begins, so no parked
long-poll holds it (:meth:`SocketIOGateway.shutdown_notice`), and a session whose client
leaves in the middle of a poll is closed at once (:meth:`SocketIOGateway._watching_polls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import msgspec
import socketio
from litestar import Litestar

from api.realtime import engineio_seam as seam
from api.realtime.affinity import Affinity
from api.realtime.client import Client
from api.realtime.hub import Hub
from api.realtime.protocol import ClientError, Refusal, decode_frame, message_from
from api.settings import Settings

log = logging.getLogger(__name__)

SOCKETIO_PATH = "socket.io"
NAMESPACE = "/"
MAX_PACKET_BYTES = 64 * 1024  # as /ws (uvicorn ws_max_size)
# Socket.IO's own defaults (Node server and python-socketio alike): a dead peer is
# dropped within ping_interval + ping_timeout.
PING_INTERVAL_S = 25
PING_TIMEOUT_S = 20
STALLED_CHECK_S = 0.5  # how often a drain blocked on a slow reader checks for overflow
WATCH_POLL_AFTER_S = 0.05  # a long-poll parked this long is watched for its client leaving

_INVALID_TOKEN = ClientError("unauthorized", "invalid token").frame()


@functools.lru_cache(maxsize=4096)
def _event_packet(raw: bytes) -> Any:
    """The Engine.IO message carrying the Socket.IO event of one hub frame. Feed frames are
    one ``bytes`` object shared by every receiver, so each update is decoded and encoded
    once per process, not once per socket."""
    f = decode_frame(raw)
    args: list[Any] = [f.event, f.data] if f.id is None else [f.event, f.data, f.id]
    return seam.event_packet(NAMESPACE, args)


@dataclass(eq=False)
class _Session:
    hub: Hub
    client: Client
    eio_sid: str
    transport: seam.Transport
    drain: asyncio.Task[None] | None = field(default=None, repr=False)


class SocketIOGateway:
    """Socket.IO connections as hub clients, one drain task per connection."""

    def __init__(self, hub: Callable[[], Hub | None], settings: Settings) -> None:
        self._hub = hub
        self.sessions: dict[str, _Session] = {}
        # --workers N: each session id names its worker, which the others forward to.
        self.affinity = Affinity(settings.data_dir) if settings.workers > 1 else None
        self.sio = seam.tagged_server(
            self.affinity.sid_prefix if self.affinity is not None else "",
            async_mode="asgi",
            # None is Engine.IO's same-origin check; CORS_ORIGINS lists others.
            cors_allowed_origins=list(settings.cors_origins) or None,
            # One connection's messages are handled in arrival order, as on /ws
            # (join then leave must not race).
            async_handlers=False,
            max_http_buffer_size=MAX_PACKET_BYTES,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            # The libraries' loggers, through this app's logging config, errors only
            # (they log every packet at INFO, every late packet at WARNING).
            logger=_library_logger("socketio.server"),
            engineio_logger=_library_logger("engineio.server"),
        )
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        self.sio.on("*", self._on_event, namespace=NAMESPACE)
        self._socketio_on_message = seam.take_over(self.sio, "message", self._on_transport_message)
        self._socketio_on_close = seam.take_over(self.sio, "disconnect", self._on_transport_close)
        self._closing: asyncio.Task[None] | None = None

    def asgi_app(self, other: Any) -> Any:
        """``/socket.io/`` here, every other request and the lifespan to ``other``.

        The path is checked first: python-socketio's ``ASGIApp`` formats its path and
        checks static files for every request before handing it on, a cost every API
        request paid."""
        engineio = self._watching_polls(
            socketio.ASGIApp(self.sio, other_asgi_app=other, socketio_path=SOCKETIO_PATH)
        )
        if self.affinity is not None:
            engineio, other = self.affinity.wrap(engineio, other)
        prefix = f"/{SOCKETIO_PATH}/"

        async def app(scope: Any, receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            if path.startswith(prefix) or path == prefix[:-1]:
                await engineio(scope, receive, send)
            elif scope["type"] == "lifespan":
                await other(scope, self._closing_at_shutdown(receive), send)
            else:
                await other(scope, receive, send)

        app.onsale_shutdown_notice = self.shutdown_notice  # type: ignore[attr-defined]
        return app

    def _watching_polls(self, engineio: Any) -> Any:
        """``engineio``, with each long-poll GET of a session watched for its client leaving
        (the ASGI ``http.disconnect`` before the answer): the session is then closed at
        once (:func:`~api.realtime.engineio_seam.abandon`), as the Node server does. Left
        to python-engineio, which never reads the disconnect of a poll, the GET stayed
        parked until the next ping (25 s), held a graceful shutdown (the request's task
        outlives its connection, so uvicorn waits for it with no connection left to tell
        the app through) and the session counted against the socket caps until the ping
        timeout. Handshakes, POSTs and WebSockets go straight through."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if (
                scope["type"] != "http"
                or scope["method"] != "GET"
                or b"sid=" not in scope.get("query_string", b"")
            ):
                await engineio(scope, receive, send)
                return
            request = await receive()  # a GET's only message: Engine.IO reads no more
            answered = False

            async def engineio_receive() -> Any:
                return request

            async def engineio_send(message: Any) -> None:
                nonlocal answered
                answered = True
                await send(message)

            watcher: list[asyncio.Task[None]] = []

            async def watch() -> None:
                try:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not answered:  # after the answer, uvicorn says disconnect too
                        await self._abandoned(scope)
                except Exception:
                    log.exception("socket.io: watching a long-poll failed")

            # Only a poll still parked a moment on is watched: most are answered at once
            # (a feed update was waiting), and a timer costs a fraction of a task. A client
            # that left meanwhile is seen as soon as the watch starts.
            timer = (
                asyncio.get_running_loop().call_later(
                    WATCH_POLL_AFTER_S, lambda: watcher.append(asyncio.create_task(watch()))
                )
                if request["type"] == "http.request"
                else None
            )
            try:
                await engineio(scope, engineio_receive, engineio_send)
            finally:
                if timer is not None:
                    timer.cancel()
                for task in watcher:
                    task.cancel()

        return app

    async def _abandoned(self, scope: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        for eio_sid in query.get("sid", [])[:1]:
            await seam.abandon(self.sio, eio_sid)

    # -- shutdown ------------------------------------------------------------------------

    def shutdown_notice(self) -> None:
        """The server's graceful shutdown has begun: every Engine.IO session is closed now
        (:func:`~api.realtime.engineio_seam.close_all`), without waiting for its client.

        uvicorn waits for the requests in flight before it sends the lifespan's shutdown,
        and a long-poll GET parked on a session is one: Engine.IO answers it when it has a
        packet, its next ping up to 25 s on, so a poll whose client has vanished (or is
        just idle) held the shutdown for the whole graceful timeout. Closed, each parked
        poll is answered at once (a NOOP; the session closed as a transport failure); a
        present client reconnects by itself (to another worker, or once this server is
        back) and resumes with ``since``. Called by ``onsale serve``'s HTTP protocol
        (api/http_protocol.py) as uvicorn starts its shutdown, in the event loop;
        idempotent."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(
                seam.close_all(self.sio), name="socketio-close-all"
            )

    async def close_all(self) -> None:
        """:meth:`shutdown_notice`, awaited: at the lifespan's shutdown, for a server that
        had no notice (another ASGI server, or a worker whose only parked polls were
        forwarded to it by the others: no HTTP connection of its own to be told through)."""
        self.shutdown_notice()
        assert self._closing is not None
        try:
            await self._closing
        except Exception:  # the rest of the shutdown goes on
            log.exception("socket.io: closing the sessions at shutdown failed")

    def _closing_at_shutdown(self, receive: Any) -> Any:
        async def lifespan_receive() -> Any:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await self.close_all()
            return message

        return lifespan_receive

    # -- connection life -----------------------------------------------------------------

    async def _on_connect(self, sid: str, *args: Any) -> None:
        if sid in self.sessions:
            # A client-sent event named "connect", not a handshake.
            await self._error_now(sid, "unknown_event", "unknown event 'connect'")
            return
        hub = self._hub()
        if hub is None:
            raise _refusal("unavailable", "starting up, retry")
        environ: dict[str, Any] = args[0] if args and isinstance(args[0], dict) else {}
        auth = args[1] if len(args) > 1 else None
        eio_sid = seam.engineio_sid(self.sio, sid, NAMESPACE)
        transport = seam.transport(self.sio, eio_sid)
        if eio_sid is None or transport is None:
            raise _refusal("unavailable", "connection closed during the handshake")
        client = Client()
        try:
            hub.connect(client, seam.client_address(environ))
            token = _token(auth, environ)
            if token is not None and not await hub.sign_in(client, token):
                client.outbox.put(_INVALID_TOKEN)
        except ClientError as e:  # a socket cap: the client's connect_error carries it
            hub.remove(client)
            raise _refusal(e.code, e.message) from None
        except BaseException:
            hub.remove(client)
            raise
        session = _Session(hub=hub, client=client, eio_sid=eio_sid, transport=transport)
        self.sessions[sid] = session
        session.drain = asyncio.create_task(self._drain(sid, session), name=f"socketio-{sid}")

    async def _on_disconnect(self, sid: str, *args: Any) -> None:
        if seam.is_connected(self.sio, sid, NAMESPACE):
            # A client-sent event named "disconnect"; a real disconnect is pending here.
            await self._error_now(sid, "unknown_event", "unknown event 'disconnect'")
            return
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session.hub.remove(session.client)
        task = session.drain
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _on_transport_message(self, eio_sid: str, data: Any) -> None:
        """Socket.IO's packet handling; a packet it cannot parse (``42[]``, ``42{``, an
        unknown type) closes the connection, as the Node server does on a parse error,
        with one log line instead of a traceback per packet. Our handlers catch their own
        errors, so what arrives here is the library's."""
        try:
            await self._socketio_on_message(eio_sid, data)
        except Exception as e:
            log.warning("socket.io %s: malformed packet (%s), closing", eio_sid, type(e).__name__)
            await seam.close_transport(self.sio, eio_sid)

    async def _on_transport_close(self, eio_sid: str, reason: Any) -> None:
        """Engine.IO closed a connection: Socket.IO's own handling, then end a long-poll
        GET still parked on it (Engine.IO keeps one after a client-sent close until
        ping_interval + ping_timeout, with its uvicorn task and a slow graceful shutdown),
        and forget the session, so that a GET the client sent meanwhile (a forwarded one
        arrives later still) is a 400 rather than a new poll parked on a closed session."""
        transport = seam.transport(self.sio, eio_sid)
        await self._socketio_on_close(eio_sid, reason)
        if transport is not None:
            # After close() returns, so a CLOSE packet it queues goes out first.
            asyncio.get_running_loop().call_soon(seam.end_pending_poll, transport)
            asyncio.get_running_loop().call_soon(seam.forget_closed, self.sio, eio_sid)

    async def _drain(self, sid: str, session: _Session) -> None:
        outbox = session.client.outbox
        transport = session.transport
        while not seam.is_closed(transport):
            await outbox.ready.wait()
            # Backpressure: take more only once Engine.IO has handed the last batch on
            # (as a rule at once: its writer took it while this task slept), so a slow
            # reader's backlog waits here, in the conflating outbox, which is watched
            # for overflow meanwhile.
            while seam.has_backlog(transport) and not outbox.overflowed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(seam.backlog_taken(transport), STALLED_CHECK_S)
            if outbox.overflowed:
                log.info("socket.io %s: outbox overflow, closing the transport", sid)
                # Engine.IO close (not a Socket.IO disconnect): clients reconnect by
                # themselves and resume with ``since``. Fires _on_disconnect inline.
                await seam.close_transport(self.sio, session.eio_sid)
                return
            for raw in outbox.take():
                await seam.send(self.sio, session.eio_sid, _event_packet(raw))

    # -- client events -------------------------------------------------------------------

    async def _on_event(self, event: Any, sid: str, *args: Any) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        client = session.client
        if not client.allow_message():
            await self._error_now(sid, "rate_limited", "too many messages")
            await self.sio.disconnect(sid, namespace=NAMESPACE)
            return
        try:
            await session.hub.handle(client, message_from(event, args[0] if args else {}))
        except ClientError as e:
            if e.close:  # a socket cap
                await self._error_now(sid, e.code, e.message)
                await self.sio.disconnect(sid, namespace=NAMESPACE)
                return
            client.outbox.put(e.frame())
        except Exception:
            # Not the client's fault (Redis unreachable...): as /ws, drop the connection so
            # every room it half-joined is freed; the client reconnects and resumes.
            log.exception("socket.io %s: %r failed", sid, event)
            await self._error_now(sid, "unavailable", "try again")
            await self.sio.disconnect(sid, namespace=NAMESPACE)

    async def _error_now(self, sid: str, code: str, message: str) -> None:
        """An ``error`` event sent now, ahead of the outbox (the connection is closing)."""
        refusal = msgspec.to_builtins(Refusal(code=code, message=message))
        await self.sio.emit("error", refusal, to=sid)


def _refusal(code: str, message: str) -> socketio.exceptions.ConnectionRefusedError:
    """A refused handshake: the client's ``connect_error`` gets an Error whose ``message``
    is ``message`` and whose ``data`` is ``{code, message}`` (Socket.IO's convention)."""
    refusal = msgspec.to_builtins(Refusal(code=code, message=message))
    return socketio.exceptions.ConnectionRefusedError(message, refusal)


def _library_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    return logger


def _token(auth: Any, environ: dict[str, Any]) -> str | None:
    """The JWT of the handshake: ``auth: { token }``, else ``?token=``."""
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values and values[0] else None


def _hub_of(app: Litestar) -> Hub | None:
    resources = getattr(app.state, "onsale", None)
    return resources.hub if resources is not None else None


def mount(app: Litestar, settings: Settings) -> Any:
    """The ASGI app uvicorn serves: Socket.IO at ``/socket.io/``, the rest to ``app``.

    The hub is built in ``app``'s lifespan (uvicorn sends the lifespan to ``app``); Socket.IO
    handlers look it up per connection, and refuse connections until it exists.
    """
    gateway = SocketIOGateway(functools.partial(_hub_of, app), settings)
    return gateway.asgi_app(app)
