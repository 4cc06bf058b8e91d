"""Real-time joins and socket caps that a client could abuse (issue 17, item 12), over both
transports (/ws and Socket.IO, websocket and polling), against a real server process:
unknown events and bad ``since`` ids are ``error`` frames (never a joined room, a tailed
stream or a dropped socket), and sockets per user, per client address and streams tailed
per process are capped, each with its own ``error`` code."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import socketio
import websockets

from tests.integration.conftest import ApiServer, create_event, register, unique_email
from tests.integration.test_socketio import Probe
from tests.integration.test_ws import connect, ws_url

pytestmark = pytest.mark.asyncio

Frame = dict[str, Any]
TRANSPORTS = ["ws", "socketio-websocket", "socketio-polling"]
PER_USER, PER_ADDRESS, STREAMS = 2, 5, 3
TOO_BIG = "99999999999999999999-0"  # matches the id pattern, beyond Redis' 64-bit range


class Conn:
    """One real-time connection, whatever its transport: frames as ``{"event", "data"}``."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.ws: Any = None
        self.probe: Probe | None = None

    @classmethod
    async def open(cls, api: ApiServer, transport: str, token: str | None = None) -> Conn:
        conn = cls(transport)
        if transport == "ws":
            conn.ws = await connect(ws_url(api, token))
        else:
            conn.probe = await Probe().connect(api.url, transport.split("-")[1], token)
        return conn

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        if self.ws is not None:
            await self.ws.send(json.dumps({"event": event, "data": data}))
        else:
            assert self.probe is not None
            await self.probe.emit(event, data)

    async def until(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        if self.probe is not None:
            return (await self.probe.until(predicate, timeout))[-1]
        async with asyncio.timeout(timeout):
            while True:
                frame: Frame = json.loads(await self.ws.recv())
                if predicate(frame):
                    return frame

    async def reply(self, event: str, data: dict[str, Any]) -> Frame:
        """The answer (``joined``, ``left``, ``authenticated`` or ``error``) to a message."""
        await self.emit(event, data)
        return await self.until(
            lambda f: f["event"] in ("joined", "left", "authenticated", "error")
        )

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        if self.probe is not None:
            try:
                await asyncio.wait_for(self.probe.disconnected.wait(), timeout)
            except TimeoutError:
                return False
            return True
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except websockets.ConnectionClosed:
            return bool(self.ws.close_code == 1008)
        except TimeoutError:
            return False

    async def close(self) -> None:
        if self.probe is not None:
            await self.probe.close()
        elif self.ws is not None:
            await self.ws.close()


async def refused_socketio(api: ApiServer, transport: str, token: str | None = None) -> Frame:
    """The ``connect_error`` data of a Socket.IO handshake the server refuses."""
    sio = socketio.AsyncClient(reconnection=False)
    got: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()

    async def on_connect_error(error: Any) -> None:  # {message, data: {code, message}}
        if not got.done():
            got.set_result(error["data"])

    sio.on("connect_error", on_connect_error)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                api.url,
                transports=[transport.split("-")[1]],
                auth={"token": token} if token else None,
                wait_timeout=5,
            )
        return await asyncio.wait_for(got, 5)
    finally:
        await sio.disconnect()


async def refused(api: ApiServer, transport: str, token: str | None = None) -> Frame:
    """The ``error`` a socket past a cap gets, having checked it is closed after it."""
    if transport != "ws":
        return await refused_socketio(api, transport, token)
    conn = await Conn.open(api, transport, token)
    try:
        error = await conn.until(lambda f: f["event"] == "error")
        assert await conn.closed_by_server(), "a socket past a cap stays open"
        data: Frame = error["data"]
        return data
    finally:
        await conn.close()


def counts(api: ApiServer) -> dict[str, int]:
    ws: dict[str, int] = httpx.get(f"{api.url}/health/ready").json()["checks"]["ws"]
    return ws


async def settled(api: ApiServer, clients: int = 0, timeout: float = 10.0) -> dict[str, int]:
    """The hub's counts once ``clients`` sockets are left (closes are asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = counts(api)
        if now["clients"] == clients or loop.time() > deadline:
            return now
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def capped(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(
        WS_MAX_PER_USER=str(PER_USER),
        WS_MAX_PER_ADDRESS=str(PER_ADDRESS),
        WS_MAX_STREAMS=str(STREAMS),
    )


@pytest.fixture(scope="module")
def world(capped: ApiServer) -> dict[str, Any]:
    org, _ = register(capped, unique_email("abuse-org"), role="ORGANIZADOR")
    buyer, buyer_user = register(capped, unique_email("abuse-buyer"))
    return {
        "buyer": buyer,
        "buyer_user": buyer_user,
        "events": [create_event(capped, org, [("A", 1.0, 100)]) for _ in range(STREAMS + 1)],
    }


# -- joins -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unknown_event_is_an_error_with_or_without_since_and_tails_nothing(
    capped: ApiServer, world: dict[str, Any], transport: str
) -> None:
    await settled(capped)
    baseline = counts(capped)
    conn = await Conn.open(capped, transport)
    try:
        for data in (
            {"eventId": "no-such-event"},
            {"eventId": "no-such-event", "since": "0-0"},
            {"eventId": "no-such-event", "since": "1700000000000-0"},
        ):
            answer = await conn.reply("join:event", data)
            assert answer["event"] == "error", (data, answer)
            assert answer["data"]["code"] == "event_not_found", (data, answer)
            now = counts(capped)
            assert now["tailedStreams"] == baseline["tailedStreams"], data
            assert now["eventRooms"] == baseline["eventRooms"], data
        # The socket is still usable.
        answer = await conn.reply("join:event", {"eventId": world["events"][0]["id"]})
        assert answer["event"] == "joined"
    finally:
        await conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_since_beyond_redis_range_is_an_error_and_the_socket_stays(
    capped: ApiServer, world: dict[str, Any], transport: str
) -> None:
    await settled(capped)
    event_id = world["events"][0]["id"]
    conn = await Conn.open(capped, transport)
    try:
        for since in (TOO_BIG, "1-18446744073709551616"):
            answer = await conn.reply("join:event", {"eventId": event_id, "since": since})
            assert answer["event"] == "error", answer
            assert answer["data"]["code"] == "bad_message", answer
        # The largest id Redis takes, and one merely ahead of the feed (a feed since
        # lost): nothing to replay from there, so a snapshot.
        for since in ("18446744073709551615-18446744073709551615", "99999999999999-0"):
            answer = await conn.reply("join:event", {"eventId": event_id, "since": since})
            assert answer["event"] == "joined", answer
            assert answer["data"]["snapshot"] is True, answer
        answer = await conn.reply("join:event", {"eventId": event_id})
        assert answer["event"] == "joined"
        assert counts(capped)["clients"] >= 1
    finally:
        await conn.close()


# -- caps --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sockets_per_user_are_capped(
    capped: ApiServer, world: dict[str, Any], transport: str
) -> None:
    await settled(capped)
    token = world["buyer"]
    user_id = world["buyer_user"]["id"]
    mine = [await Conn.open(capped, transport, token) for _ in range(PER_USER)]
    # A /ws socket is accepted before its ?token= is checked: an answer to a message
    # that needs the user says it is signed in (else, on a starved machine, the socket
    # opened next could be counted first and one of these refused instead).
    for conn in mine:
        assert (await conn.reply("join:user", {"userId": user_id}))["event"] == "joined"
    anonymous = await Conn.open(capped, transport)
    try:
        error = await refused(capped, transport, token)
        assert error["code"] == "too_many_user_sockets", error
        # Signing in on an open socket counts too: error, then closed.
        answer = await anonymous.reply("auth", {"token": token})
        assert answer["event"] == "error" and answer["data"]["code"] == "too_many_user_sockets"
        assert await anonymous.closed_by_server()
        # Another user is not affected; one of mine closing makes room again.
        other, _ = register(capped, unique_email("abuse-other"))
        extra = await Conn.open(capped, transport, other)
        assert (await extra.reply("join:event", {"eventId": world["events"][0]["id"]}))[
            "event"
        ] == "joined"
        await extra.close()
        await mine.pop().close()
        await settled(capped, clients=len(mine))
        again = await Conn.open(capped, transport, token)
        mine.append(again)
        assert (await again.reply("join:user", {"userId": user_id}))["event"] == "joined"
    finally:
        for conn in mine:
            await conn.close()
        await anonymous.close()


async def test_sockets_per_address_are_capped_across_both_transports(
    capped: ApiServer, world: dict[str, Any]
) -> None:
    await settled(capped)
    opened = [await Conn.open(capped, TRANSPORTS[i % 3]) for i in range(PER_ADDRESS)]
    try:
        for transport in TRANSPORTS:
            error = await refused(capped, transport)
            assert error["code"] == "too_many_sockets", (transport, error)
        assert counts(capped)["clients"] == PER_ADDRESS
        await opened.pop().close()
        await settled(capped, clients=PER_ADDRESS - 1)
        opened.append(await Conn.open(capped, "ws"))
        answer = await opened[-1].reply("join:event", {"eventId": world["events"][0]["id"]})
        assert answer["event"] == "joined"
    finally:
        for conn in opened:
            await conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_streams_tailed_per_process_are_capped(
    capped: ApiServer, world: dict[str, Any], transport: str
) -> None:
    now = await settled(capped)
    assert now["tailedStreams"] == 0, now
    events = [e["id"] for e in world["events"]]
    first = await Conn.open(capped, transport)
    second = await Conn.open(capped, transport)
    try:
        for event_id in events[:STREAMS]:
            assert (await first.reply("join:event", {"eventId": event_id}))["event"] == "joined"
        answer = await second.reply("join:event", {"eventId": events[STREAMS]})
        assert answer["event"] == "error" and answer["data"]["code"] == "too_many_streams"
        assert counts(capped)["tailedStreams"] == STREAMS
        # An event already tailed costs no stream; the socket stays usable.
        assert (await second.reply("join:event", {"eventId": events[0]}))["event"] == "joined"
        # A stream let go makes room.
        assert (await first.reply("leave:event", {"eventId": events[1]}))["event"] == "left"
        answer = await second.reply("join:event", {"eventId": events[STREAMS]})
        assert answer["event"] == "joined", answer
    finally:
        await first.close()
        await second.close()
    now = await settled(capped)
    assert now["tailedStreams"] == 0, now
