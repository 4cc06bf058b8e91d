"""Every use of python-socketio / python-engineio internals, in one place.

The Socket.IO transport (:mod:`api.realtime.socketio`) needs more than the libraries'
public API offers, for four reasons:

* **Backpressure.** Engine.IO queues outgoing packets per connection without a bound. The
  drain task hands over one batch, then waits until that connection's queue is empty
  (``AsyncSocket.queue``) before taking more, so a slow reader's backlog stays in the
  hub's bounded, conflating outbox. Frames are sent as prebuilt Engine.IO packets
  (``send_packet``), each built once per process for all receivers.
* **Closing without waiting.** ``AsyncServer.disconnect(sid)`` waits for the client to
  read the CLOSE packet, which a slow or broken client may never do; a transport is
  closed with ``AsyncSocket.close(wait=False)`` and dropped from ``AsyncServer.sockets``,
  and so is every transport when the server shuts down (:func:`close_all`, which also
  answers the long-poll GETs parked on them, which uvicorn's graceful shutdown would
  otherwise wait for).
* **Malformed packets and parked polls.** Socket.IO's own Engine.IO ``message`` and
  ``disconnect`` handlers (``AsyncServer.handlers``) are wrapped: a packet Socket.IO cannot
  parse closes the connection with one log line, and a long-poll GET still parked on a
  closed connection is ended (Engine.IO keeps it until ping_interval + ping_timeout). A
  session whose client left mid-poll is closed (:func:`abandon`): python-engineio never
  reads the ASGI ``http.disconnect`` of a poll.
* **The client address.** python-engineio's ASGI environ fixes ``REMOTE_ADDR`` to
  127.0.0.1; the per-address socket cap reads the ASGI scope it keeps (``asgi.scope``).
* **Session affinity across workers** (:mod:`api.realtime.affinity`). Every Engine.IO
  session id a worker makes starts with that worker's tag: Socket.IO's server builds its
  Engine.IO server from ``AsyncServer._engineio_server_class()``, whose ``generate_id``
  is overridden in a subclass (:func:`tagged_server`). A request for the session of a
  worker that is gone is answered as Engine.IO answers an unknown session
  (:func:`unknown_session`).

Written against python-socketio 5.18.1 / python-engineio 4.15.1 (pyproject bounds them to
the 5.x / 4.x lines). tests/unit/test_engineio_seam.py pins every attribute and behaviour
used here, so an upgrade that moves one fails there, by name, before any client notices.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as engineio_packet

EngineHandler = Callable[..., Awaitable[Any]]
Transport = Any
"""An Engine.IO connection: ``engineio.async_socket.AsyncSocket``."""


def take_over(sio: socketio.AsyncServer, event: str, handler: EngineHandler) -> EngineHandler:
    """Put ``handler`` in place of Socket.IO's own handler of an Engine.IO event
    (``"message"``, ``"disconnect"``) and return Socket.IO's, for ``handler`` to call."""
    socketio_handler: EngineHandler = sio.eio.handlers[event]
    sio.eio.on(event, handler)
    return socketio_handler


def engineio_sid(sio: socketio.AsyncServer, sid: str, namespace: str) -> str | None:
    """The Engine.IO session under a Socket.IO session id."""
    eio_sid: str | None = sio.manager.eio_sid_from_sid(sid, namespace)
    return eio_sid


def is_connected(sio: socketio.AsyncServer, sid: str, namespace: str) -> bool:
    return bool(sio.manager.is_connected(sid, namespace))


def transport(sio: socketio.AsyncServer, eio_sid: str | None) -> Transport | None:
    """The live Engine.IO connection of ``eio_sid``, None once it is gone."""
    return sio.eio.sockets.get(eio_sid) if eio_sid is not None else None


def is_closed(conn: Transport) -> bool:
    return bool(conn.closed)


def has_backlog(conn: Transport) -> bool:
    """Packets handed to Engine.IO that its writer (or a long-poll) has not taken yet."""
    return not conn.queue.empty()


async def backlog_taken(conn: Transport) -> None:
    """Returns once Engine.IO has handed every queued packet on."""
    await conn.queue.join()


async def send(sio: socketio.AsyncServer, eio_sid: str, pkt: Any) -> None:
    """A prebuilt Engine.IO packet to one connection (a no-op once it is gone)."""
    await sio.eio.send_packet(eio_sid, pkt)


async def close_transport(sio: socketio.AsyncServer, eio_sid: str) -> None:
    """Engine.IO's ``AsyncServer.disconnect(sid)`` without its wait for the client to read
    the CLOSE packet. The session leaves Engine.IO's table at once: a later poll or POST
    for it is a 400, not a 500."""
    conn = transport(sio, eio_sid)
    if conn is None:
        return
    await conn.close(wait=False, abort=False)
    sio.eio.sockets.pop(eio_sid, None)


async def close_all(sio: socketio.AsyncServer) -> None:
    """Every Engine.IO session closed for a server that is going away, without waiting
    for any client (``AsyncServer.disconnect()`` waits for each to read its CLOSE packet,
    which a vanished one never does), then Engine.IO's own background task (the
    ping-timeout sweep) stopped, as ``AsyncServer.shutdown()`` does.

    A long-poll GET parked on a session is answered at once, with a NOOP, and the session
    is closed as one whose transport failed (``close(abort=True)``: no CLOSE packet). The
    client's next request finds the server gone (or, on another worker, the session
    unknown: a 400), which every Socket.IO client takes for a network failure and
    reconnects from; a CLOSE packet would be final for python-socketio's client, which
    does not reconnect after a server-sent CLOSE (socket.io-client does either way)."""
    noop = engineio_packet.Packet(engineio_packet.NOOP)
    for eio_sid, conn in list(sio.eio.sockets.items()):
        if not conn.closed and not conn.upgraded:
            conn.queue.put_nowait(noop)  # a parked poll's answer; else never read
        await conn.close(wait=False, abort=True)
        sio.eio.sockets.pop(eio_sid, None)
    await sio.shutdown()


async def abandon(sio: socketio.AsyncServer, eio_sid: str) -> None:
    """A session whose client left in the middle of a long-poll GET (the connection closed
    or reset under it), closed as the Node server closes one ("poll connection closed
    prematurely": a transport error), without a CLOSE packet nobody would read. The GET
    itself is released by the gateway's close handler (:func:`end_pending_poll`)."""
    conn = transport(sio, eio_sid)
    if conn is None or conn.closed:
        return
    await conn.close(wait=False, abort=True, reason=sio.eio.reason.TRANSPORT_ERROR)
    sio.eio.sockets.pop(eio_sid, None)


def end_pending_poll(conn: Transport) -> None:
    """Release a long-poll GET parked on a closed, never-upgraded connection (the None
    sentinel is what Engine.IO's own close uses to unlock its reader)."""
    if conn.closed and not conn.upgraded:
        conn.queue.put_nowait(None)


def forget_closed(sio: socketio.AsyncServer, eio_sid: str) -> None:
    """Drop a closed session from ``AsyncServer.sockets``: Engine.IO keeps one closed by a
    client's POST until the next GET, which then parks on it (a poll that nothing ends
    until ping_interval + ping_timeout). Forgotten, that GET is an unknown session (400)."""
    conn = sio.eio.sockets.get(eio_sid)
    if conn is not None and conn.closed:
        sio.eio.sockets.pop(eio_sid, None)


def event_packet(namespace: str, args: list[Any]) -> Any:
    """The Engine.IO MESSAGE carrying the Socket.IO EVENT ``args`` (name, then arguments).
    Engine.IO caches a packet's encoding, so one packet sent to many costs one encode."""
    event = socketio.packet.Packet(socketio.packet.EVENT, data=args, namespace=namespace)
    return engineio_packet.Packet(engineio_packet.MESSAGE, data=event.encode())


def client_address(environ: dict[str, Any]) -> str | None:
    """The client address of a Socket.IO handshake. python-engineio's ASGI environ has
    ``REMOTE_ADDR`` fixed to 127.0.0.1; the ASGI scope's ``client`` is the real one (after
    uvicorn's proxy-header handling when ``TRUSTED_PROXIES`` is set)."""
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    return str(client[0]) if client else environ.get("REMOTE_ADDR")


def tagged_server(sid_prefix: str, **options: Any) -> socketio.AsyncServer:
    """python-socketio's ``AsyncServer(**options)`` whose Engine.IO session ids (and so its
    Socket.IO ones, made by the same ``generate_id``) all start with ``sid_prefix``; with
    ``""`` the library's own server, untouched."""
    if not sid_prefix:
        return socketio.AsyncServer(**options)

    class Tagged(socketio.AsyncServer):  # type: ignore[misc]
        def _engineio_server_class(self) -> Any:
            engineio_server: Any = super()._engineio_server_class()

            class TaggedEngineIO(engineio_server):  # type: ignore[misc]
                def generate_id(self) -> str:
                    return sid_prefix + str(super().generate_id())

            return TaggedEngineIO

    return Tagged(**options)


def unknown_session(sid: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Engine.IO's answer to a poll or POST for a session it does not know (status,
    headers, body): 400, a JSON string, which makes Socket.IO clients reconnect. Over a
    WebSocket the same refusal is a close before the accept."""
    body = json.dumps(f"Invalid session {sid}", separators=(",", ":")).encode()
    return 400, [(b"content-type", b"text/plain")], body
