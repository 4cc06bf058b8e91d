"""Pins what api/realtime/engineio_seam.py relies on in python-socketio / python-engineio.

A library upgrade that renames or reshapes any of it fails here, by name, rather than as
a stalled or leaking Socket.IO connection in production."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from importlib.metadata import version

import socketio
from engineio.async_socket import AsyncSocket

from api.realtime import engineio_seam as seam


def major(package: str) -> int:
    return int(version(package).split(".")[0])


def test_the_library_lines_the_seam_was_written_for() -> None:
    assert major("python-socketio") == 5
    assert major("python-engineio") == 4


def server() -> socketio.AsyncServer:
    return socketio.AsyncServer(async_mode="asgi")


def test_socketio_registers_engineio_handlers_that_can_be_taken_over() -> None:
    sio = server()

    async def ours(*args: object) -> None:
        return None

    for event in ("message", "disconnect"):
        theirs = seam.take_over(sio, event, ours)
        assert inspect.iscoroutinefunction(theirs), event
        assert theirs.__self__ is sio, event  # type: ignore[attr-defined]
        assert sio.eio.handlers[event] is ours


async def connection(sio: socketio.AsyncServer, eio_sid: str = "e1") -> AsyncSocket:
    conn = AsyncSocket(sio.eio, eio_sid)
    sio.eio.sockets[eio_sid] = conn
    return conn


async def test_a_connection_is_found_and_its_queue_is_the_backlog() -> None:
    sio = server()
    conn = await connection(sio)
    assert seam.transport(sio, "e1") is conn
    assert seam.transport(sio, "gone") is None and seam.transport(sio, None) is None
    assert not seam.is_closed(conn) and not conn.upgraded
    assert not seam.has_backlog(conn)
    pkt = seam.event_packet("/", ["ticket:stock-update", {"a": 1}, "1-0"])
    await seam.send(sio, "e1", pkt)
    assert seam.has_backlog(conn)
    assert conn.queue.get_nowait() is pkt
    conn.queue.task_done()
    await asyncio.wait_for(seam.backlog_taken(conn), 1)
    await seam.send(sio, "gone", pkt)  # a connection already gone: a no-op


def test_an_event_packet_is_the_socketio_event_in_an_engineio_message() -> None:
    pkt = seam.event_packet("/", ["ticket:stock-update", {"nuevoStock": 3}, "1-0"])
    assert pkt.encode() == '42["ticket:stock-update",{"nuevoStock":3},"1-0"]'
    assert pkt.encode() is pkt.encode()  # encoded once, whoever it goes to


async def test_close_transport_does_not_wait_for_the_client_and_forgets_it() -> None:
    sio = server()
    closes: list[str] = []

    async def on_disconnect(eio_sid: str, reason: object) -> None:
        closes.append(eio_sid)

    sio.eio.on("disconnect", on_disconnect)
    assert "wait" in inspect.signature(AsyncSocket.close).parameters
    assert "abort" in inspect.signature(AsyncSocket.close).parameters
    conn = await connection(sio)
    await asyncio.wait_for(seam.close_transport(sio, "e1"), 1)  # nobody reads the CLOSE
    assert seam.is_closed(conn) and closes == ["e1"]
    assert "e1" not in sio.eio.sockets
    await seam.close_transport(sio, "e1")  # twice: a no-op


async def test_close_all_answers_parked_polls_and_waits_for_no_client() -> None:
    sio = server()
    closes: list[str] = []

    async def on_disconnect(eio_sid: str, reason: object) -> None:
        closes.append(eio_sid)

    sio.eio.on("disconnect", on_disconnect)
    parked = await connection(sio, "e1")
    idle = await connection(sio, "e2")  # no poll: its client has vanished, say
    poll = asyncio.create_task(parked.poll())  # what a parked long-poll GET awaits
    await asyncio.sleep(0)
    await asyncio.wait_for(seam.close_all(sio), 1)  # nobody will ever poll e2
    packets = await asyncio.wait_for(poll, 1)
    # A NOOP, not a CLOSE: python-socketio's client would not reconnect after a CLOSE.
    assert [p.encode() for p in packets] == ["6"]
    assert seam.is_closed(parked) and seam.is_closed(idle)
    assert sorted(closes) == ["e1", "e2"] and sio.eio.sockets == {}
    await asyncio.wait_for(seam.close_all(sio), 1)  # twice, or with no session: a no-op

    # It ends Engine.IO's ping-timeout sweep (started by a handshake) as
    # AsyncServer.shutdown() does.
    swept = server()
    sent = await asgi_get(socketio.ASGIApp(swept), b"EIO=4&transport=polling")
    assert sent[0]["status"] == 200 and len(swept.eio.sockets) == 1
    sweep = swept.eio.service_task_handle
    assert isinstance(sweep, asyncio.Task) and not sweep.done()
    await asyncio.sleep(0)  # the sweep has started (and made its event)
    await asyncio.wait_for(seam.close_all(swept), 2)
    assert sweep.done() and swept.eio.service_task_handle is None
    assert swept.eio.sockets == {}


async def test_abandon_closes_a_session_as_a_transport_error_without_a_close_packet() -> None:
    sio = server()
    reasons: list[object] = []

    async def on_disconnect(eio_sid: str, reason: object) -> None:
        reasons.append(reason)

    sio.eio.on("disconnect", on_disconnect)
    conn = await connection(sio)
    await asyncio.wait_for(seam.abandon(sio, "e1"), 1)
    assert seam.is_closed(conn) and "e1" not in sio.eio.sockets
    assert reasons == [sio.eio.reason.TRANSPORT_ERROR] == ["transport error"]
    assert conn.queue.empty()  # no CLOSE: nobody is there to read it
    await seam.abandon(sio, "e1")  # gone: a no-op
    assert reasons == ["transport error"]


async def test_end_pending_poll_releases_a_parked_long_poll() -> None:
    sio = server()
    conn = await connection(sio)
    seam.end_pending_poll(conn)  # open: nothing to release
    assert conn.queue.empty()
    conn.closed = True
    poll = asyncio.create_task(conn.poll())  # what a parked long-poll GET awaits
    await asyncio.sleep(0)
    seam.end_pending_poll(conn)
    assert await asyncio.wait_for(poll, 1) == []


async def test_the_manager_maps_socketio_sessions_to_engineio_ones() -> None:
    sio = server()
    sid = await sio.manager.connect("e1", "/")
    assert seam.engineio_sid(sio, sid, "/") == "e1"
    assert seam.is_connected(sio, sid, "/")
    assert seam.engineio_sid(sio, "nobody", "/") is None
    assert not seam.is_connected(sio, "nobody", "/")


def test_the_asgi_environ_keeps_the_scope_whose_client_is_the_real_address() -> None:
    from engineio.async_drivers.asgi import translate_request

    scope = {
        "type": "http",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=polling",
        "headers": [],
        "client": ("203.0.113.7", 51000),
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: object) -> None:
        return None

    environ = asyncio.run(translate_request(scope, receive, send))
    assert environ["REMOTE_ADDR"] == "127.0.0.1"  # python-engineio's fixed value
    assert seam.client_address(environ) == "203.0.113.7"


async def asgi_get(app: object, query: bytes, method: str = "GET") -> list[dict[str, object]]:
    """One HTTP request through an ASGI app; the messages it sent."""
    scope = {
        "type": "http",
        "method": method,
        "path": "/socket.io/",
        "query_string": query,
        "headers": [],
        "client": ("203.0.113.7", 51000),
    }
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return sent


async def test_a_tagged_server_makes_every_session_id_start_with_its_tag() -> None:
    import json

    import engineio

    plain = seam.tagged_server("", async_mode="asgi")
    assert type(plain) is socketio.AsyncServer and type(plain.eio) is engineio.AsyncServer
    sio = seam.tagged_server("1a2b-00ff.", async_mode="asgi")
    assert isinstance(sio, socketio.AsyncServer) and isinstance(sio.eio, engineio.AsyncServer)
    assert sio.eio.generate_id().startswith("1a2b-00ff.")
    # The handshake's sid is generate_id's (python-socketio builds its Engine.IO server
    # with _engineio_server_class()).
    sent = await asgi_get(socketio.ASGIApp(sio), b"EIO=4&transport=polling")
    assert sent[0]["status"] == 200
    body = sent[1]["body"]
    assert isinstance(body, bytes) and body.startswith(b"0")
    handshake = json.loads(body[1:])
    assert handshake["sid"].startswith("1a2b-00ff.")
    assert handshake["sid"] in sio.eio.sockets


async def test_unknown_session_is_engineios_own_answer() -> None:
    sio = server()
    app = socketio.ASGIApp(sio)
    sid = "dead-0000.AAAAAAAAAAAAAAAAAAAA"
    status, headers, body = seam.unknown_session(sid)
    for method in ("GET", "POST"):
        sent = await asgi_get(app, f"EIO=4&transport=polling&sid={sid}".encode(), method)
        assert sent[0]["status"] == status == 400
        theirs = {k.lower(): v for k, v in sent[0]["headers"]}  # type: ignore[attr-defined]
        assert theirs[b"content-type"] == dict(headers)[b"content-type"] == b"text/plain"
        assert sent[1]["body"] == body == b'"Invalid session dead-0000.AAAAAAAAAAAAAAAAAAAA"'


async def test_forget_closed_drops_a_closed_session_only() -> None:
    sio = server()
    conn = await connection(sio)
    seam.forget_closed(sio, "e1")  # open: kept
    assert sio.eio.sockets["e1"] is conn
    conn.closed = True
    seam.forget_closed(sio, "e1")
    assert "e1" not in sio.eio.sockets
    seam.forget_closed(sio, "e1")  # gone already: a no-op
    # Why: a closed session's queue releases one parked poll (end_pending_poll's None);
    # the next poll would wait ping_interval + ping_timeout.
    conn.queue.put_nowait(None)
    assert await asyncio.wait_for(conn.poll(), 1) == []
    second = asyncio.create_task(conn.poll())
    done, _ = await asyncio.wait([second], timeout=0.2)
    assert not done, "a second poll on a closed session returned"
    second.cancel()
    with contextlib.suppress(BaseException):
        await second
