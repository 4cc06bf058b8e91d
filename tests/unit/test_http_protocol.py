"""api/http_protocol.py tells the app when uvicorn's graceful shutdown begins, and the
Socket.IO gateway then closes its sessions, so a parked long-poll is answered at once
rather than at Engine.IO's next ping; and the gateway closes a session whose client left
in the middle of a poll, which python-engineio never notices
(tests/integration/test_socketio_shutdown.py runs both against a real ``onsale serve``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import socketio
from engineio.async_socket import AsyncSocket
from uvicorn.config import Config
from uvicorn.server import ServerState

from api.hot_http import HotHttpProtocol
from api.http_protocol import HttpProtocol, shutdown_notice_of
from api.realtime.socketio import SocketIOGateway
from api.settings import Settings
from tests.unit.fake_transport import Transport


class App:
    def __init__(self) -> None:
        self.notices = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None

    def onsale_shutdown_notice(self) -> None:
        self.notices += 1


def loaded(app: Any, **options: Any) -> Config:
    config = Config(app, lifespan="off", log_config=None, **options)
    config.load()
    return config


def test_the_notice_is_found_under_uvicorns_own_wrappers() -> None:
    app = App()
    assert shutdown_notice_of(app) == app.onsale_shutdown_notice
    proxied = loaded(app, proxy_headers=True, forwarded_allow_ips="*")
    assert proxied.loaded_app is not app  # uvicorn's ProxyHeadersMiddleware
    assert shutdown_notice_of(proxied.loaded_app) == app.onsale_shutdown_notice
    traced = loaded(app, proxy_headers=False, log_level="trace")
    assert traced.loaded_app is not app  # uvicorn's MessageLoggerMiddleware
    assert shutdown_notice_of(traced.loaded_app) == app.onsale_shutdown_notice

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        return None

    assert shutdown_notice_of(plain) is None


async def test_each_connections_shutdown_tells_the_app_and_stays_uvicorns() -> None:
    app = App()
    config = loaded(app, proxy_headers=False)
    state = ServerState()
    for protocol_class in (HttpProtocol, HotHttpProtocol):
        protocol = protocol_class(config, state, {}, asyncio.get_running_loop())
        transport = Transport()
        protocol.connection_made(transport)
        assert protocol in state.connections
        protocol.shutdown()
        assert transport.closed  # uvicorn's: an idle connection is closed
    assert app.notices == 2
    assert issubclass(HotHttpProtocol, HttpProtocol)

    async def plain(scope: Any, receive: Any, send: Any) -> None:
        return None

    protocol = HttpProtocol(loaded(plain, proxy_headers=False), state, {})
    transport = Transport()
    protocol.connection_made(transport)
    protocol.shutdown()  # an app without a notice: uvicorn's shutdown only
    assert transport.closed


def gateway(tmp_path: Path, other: Any = None) -> tuple[SocketIOGateway, Any]:
    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        return None

    sio_gateway = SocketIOGateway(lambda: None, Settings(data_dir=tmp_path))
    return sio_gateway, sio_gateway.asgi_app(other or nothing)


def session(sio: socketio.AsyncServer, eio_sid: str) -> AsyncSocket:
    """An Engine.IO session past its handshake, polling."""
    conn = AsyncSocket(sio.eio, eio_sid)
    conn.connected = True
    sio.eio.sockets[eio_sid] = conn
    return conn


async def test_the_gateways_notice_answers_a_parked_poll_at_once(tmp_path: Path) -> None:
    sio_gateway, app = gateway(tmp_path)
    assert app.onsale_shutdown_notice == sio_gateway.shutdown_notice
    parked = session(sio_gateway.sio, "e1")
    session(sio_gateway.sio, "e2")  # its client vanished between polls
    poll = asyncio.create_task(parked.poll())  # what a parked long-poll GET awaits
    await asyncio.sleep(0)
    app.onsale_shutdown_notice()  # as uvicorn's shutdown begins: sync, in the loop
    app.onsale_shutdown_notice()  # every connection's shutdown calls it: acts once
    packets = await asyncio.wait_for(poll, 1)
    assert [p.encode() for p in packets] == ["6"]  # Engine.IO's NOOP
    await asyncio.sleep(0)
    assert sio_gateway.sio.eio.sockets == {}


async def test_the_lifespan_shutdown_closes_the_sessions_first(tmp_path: Path) -> None:
    """Without a notice (another ASGI server, or a worker whose parked polls were all
    forwarded to it): at the lifespan's shutdown, before the app behind sees it."""
    seen: list[tuple[str, bool]] = []

    async def litestar(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append((message["type"], conn.closed))

    sio_gateway, app = gateway(tmp_path, litestar)
    conn = session(sio_gateway.sio, "e1")

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.shutdown"}

    await app({"type": "lifespan"}, receive, None)
    assert seen == [("lifespan.shutdown", True)]
    assert sio_gateway.sio.eio.sockets == {}


async def poll(
    app: Any, eio_sid: str, receive: Any, answered: asyncio.Event | None = None
) -> list[dict[str, Any]]:
    """One long-poll GET of ``eio_sid`` through the gateway's app; what it sent
    (``answered`` set once the body is)."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/socket.io/",
        "query_string": f"EIO=4&transport=polling&sid={eio_sid}".encode(),
        "headers": [],
        "client": ("203.0.113.7", 51000),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if answered is not None and message["type"] == "http.response.body":
            answered.set()

    await asyncio.wait_for(app(scope, receive, send), 2)
    return sent


def client(*messages: dict[str, Any], then: asyncio.Event | None = None) -> Any:
    """An ASGI receive: ``messages``, then (once ``then`` is set) the disconnect."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if then is not None:
            await then.wait()
        return {"type": "http.disconnect"}

    return receive


REQUEST = {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize("leaves_after", [0.0, 0.1])  # before the watch starts, after
async def test_a_session_whose_client_leaves_mid_poll_is_closed_at_once(
    tmp_path: Path, leaves_after: float
) -> None:
    sio_gateway, app = gateway(tmp_path)
    closes: list[str] = []
    theirs = sio_gateway.sio.eio.handlers["disconnect"]

    async def on_close(eio_sid: str, reason: Any) -> None:
        closes.append(str(reason))
        await theirs(eio_sid, reason)

    sio_gateway.sio.eio.on("disconnect", on_close)
    conn = session(sio_gateway.sio, "e1")
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(leaves_after, gone.set)  # the connection resets under the parked GET
    sent = await poll(app, "e1", client(REQUEST, then=gone))  # not parked for 25 s
    assert sent[0]["status"] == 200  # to nobody: uvicorn drops it
    assert conn.closed and "e1" not in sio_gateway.sio.eio.sockets
    assert closes == ["transport error"]  # as the Node server closes it


async def test_a_poll_answered_keeps_its_session_whatever_follows(tmp_path: Path) -> None:
    sio_gateway, app = gateway(tmp_path)
    conn = session(sio_gateway.sio, "e1")
    conn.queue.put_nowait(seam_packet())
    # uvicorn says "disconnect" after the answer too: that is not the client leaving.
    answered = asyncio.Event()
    sent = await poll(app, "e1", client(REQUEST, then=answered), answered)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"6"
    await asyncio.sleep(0.05)
    assert not conn.closed and sio_gateway.sio.eio.sockets["e1"] is conn


def seam_packet() -> Any:
    from engineio import packet

    return packet.Packet(packet.NOOP)
