"""The ASGI-over-Unix-socket bridge of api/realtime/affinity.py, in one process: two
``Affinity`` objects (two "workers", each its tag and socket under one DATA_DIR), real
Unix sockets, ASGI apps on both ends. Engine.IO itself is the local app where its answer
matters (an unknown or dead owner is its 400, never a 500); tests/integration/
test_socketio_workers.py runs the real thing with two uvicorn workers.

The last test prints the rough cost of a forwarded request and of a forwarded frame."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from api.realtime import affinity as aff

Message = dict[str, Any]


def scope_of(kind: str, query: bytes, method: str = "GET") -> Message:
    scope: Message = {
        "type": kind,
        "path": "/socket.io/",
        "raw_path": b"/socket.io/",
        "query_string": query,
        "headers": [(b"host", b"example.test"), (b"x-a", b"1")],
        "client": ("203.0.113.7", 51000),
        "server": ("127.0.0.1", 3000),
        "state": {"not": object()},  # not JSON-safe: never forwarded
    }
    if kind == "http":
        scope["method"] = method
    return scope


class Peer:
    """The client side of one ASGI connection: scripted receives, recorded sends."""

    def __init__(self, *incoming: Message, then_block: bool = True) -> None:
        self.incoming = list(incoming)
        self.then_block = then_block
        self.sent: list[Message] = []
        self.got = asyncio.Event()

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        if self.then_block:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self.got.set()


async def echo_http(scope: Message, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = {
        "client": list(scope["client"]),
        "method": scope["method"],
        "query": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "body": body.decode(),
        "state": "state" in scope,
    }
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-owner", b"1")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


async def echo_ws(scope: Message, receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "headers": []})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close please":
            await send({"type": "websocket.close", "code": 1000})
            return
        await send(
            {"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")}
        )


async def owner_app(scope: Message, receive: Any, send: Any) -> None:
    await (echo_ws if scope["type"] == "websocket" else echo_http)(scope, receive, send)


async def front_local(scope: Message, receive: Any, send: Any) -> None:
    raise AssertionError("served by the front worker, not forwarded")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A DATA_DIR short enough for its own run/ directory (pytest's tmp_path under xdist
    is not: affinity would fall back to a directory in /tmp, left there)."""
    path = Path(tempfile.mkdtemp(prefix="aff-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def pair(data_dir: Path) -> AsyncIterator[tuple[aff.Affinity, aff.Affinity]]:
    front = aff.Affinity(data_dir, tag="1-aaaa")
    owner = aff.Affinity(data_dir, tag="2-bbbb")
    front.wrap(front_local, front_local)  # type: ignore[arg-type]
    owner.wrap(owner_app, owner_app)  # type: ignore[arg-type]
    await owner.start()
    yield front, owner
    await owner.stop()


def test_session_tags_are_read_from_the_query_and_only_tags_name_sockets() -> None:
    assert aff.session_tag(b"EIO=4&transport=polling&sid=1a2b-00ff.xyz") == "1a2b-00ff"
    assert aff.session_tag(b"EIO=4&transport=polling") is None  # the handshake
    assert aff.session_tag(b"sid=untagged") is None
    assert aff.session_tag(b"sid=..%2F..%2Fetc.x") is None
    assert aff.session_tag(b"sid=../../x-0000.y") is None
    assert aff.session_tag(b"t=1&sid=ab-cdef.1.2") == "ab-cdef"
    tag = aff.worker_tag()
    assert aff.TAG.fullmatch(tag)


def test_a_long_data_dir_gets_a_short_socket_directory(data_dir: Path) -> None:
    assert aff.socket_dir(data_dir) == (data_dir / "run").resolve()
    deep = data_dir / ("d" * 120)
    short = aff.socket_dir(deep)
    assert short != deep / "run" and short == aff.socket_dir(deep)
    assert len(str(short / "eio-ffffffffffffffff-ffff.sock")) < 108


async def test_a_request_for_another_workers_session_reaches_it_whole(
    pair: tuple[aff.Affinity, aff.Affinity],
) -> None:
    front, owner = pair
    assert owner.path.exists() and oct(owner.path.stat().st_mode & 0o777) == "0o600"
    query = f"EIO=4&transport=polling&sid={owner.sid_prefix}abc".encode()
    peer = Peer(
        {"type": "http.request", "body": b"4", "more_body": True},
        {"type": "http.request", "body": b"2[]", "more_body": False},
    )
    await asyncio.wait_for(
        front.dispatch(scope_of("http", query, "POST"), peer.receive, peer.send), 5
    )
    start, body = peer.sent
    assert start["status"] == 200 and [tuple(h) for h in start["headers"]] == [(b"x-owner", b"1")]
    seen = json.loads(body["body"])
    assert seen["client"] == ["203.0.113.7", 51000]  # the real client, for per-address caps
    assert seen["method"] == "POST" and seen["query"] == query.decode()
    assert seen["headers"] == [["host", "example.test"], ["x-a", "1"]]
    assert seen["body"] == "42[]" and seen["state"] is False


async def test_own_and_untagged_sessions_are_served_here(data_dir: Path) -> None:
    served: list[bytes] = []

    async def local(scope: Message, receive: Any, send: Any) -> None:
        served.append(scope["query_string"])

    me = aff.Affinity(data_dir, tag="3-cccc")
    me.wrap(local, local)  # type: ignore[arg-type]
    for query in (b"EIO=4&transport=polling", f"sid={me.sid_prefix}x".encode(), b"sid=plain"):
        await me.dispatch(scope_of("http", query), Peer().receive, Peer().send)
    assert len(served) == 3
    assert not me.directory.exists() or not me.path.exists()  # never started: no socket


async def test_a_websocket_is_pumped_both_ways_for_its_lifetime(
    pair: tuple[aff.Affinity, aff.Affinity],
) -> None:
    front, _ = pair
    query = b"EIO=4&transport=websocket&sid=2-bbbb.abc"
    peer = Peer(
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "2probe"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.disconnect", "code": 1000},
    )
    await asyncio.wait_for(front.dispatch(scope_of("websocket", query), peer.receive, peer.send), 5)
    kinds = [m["type"] for m in peer.sent]
    assert kinds == ["websocket.accept", "websocket.send", "websocket.send"]
    assert peer.sent[1]["text"] == "2probe" and peer.sent[2]["bytes"] == b"\x00\x01"

    # The owner closes: the front passes the close on and ends, its client still silent.
    peer = Peer(
        {"type": "websocket.connect"}, {"type": "websocket.receive", "text": "close please"}
    )
    await asyncio.wait_for(front.dispatch(scope_of("websocket", query), peer.receive, peer.send), 5)
    assert [m["type"] for m in peer.sent] == ["websocket.accept", "websocket.close"]


async def test_an_owner_that_stops_closes_its_forwarded_websockets(
    pair: tuple[aff.Affinity, aff.Affinity],
) -> None:
    front, owner = pair
    peer = Peer({"type": "websocket.connect"})
    query = b"EIO=4&transport=websocket&sid=2-bbbb.abc"
    task = asyncio.create_task(
        front.dispatch(scope_of("websocket", query), peer.receive, peer.send)
    )
    await asyncio.wait_for(peer.got.wait(), 5)
    await owner.stop()
    await asyncio.wait_for(task, 5)
    assert [m["type"] for m in peer.sent] == ["websocket.accept", "websocket.close"]
    assert peer.sent[1]["code"] == aff.OWNER_GONE_CLOSE
    assert not owner.path.exists()


async def _engineio_answer(front: aff.Affinity, sid: str, method: str = "GET") -> list[Message]:
    peer = Peer({"type": "http.request", "body": b"1", "more_body": False}, then_block=False)
    query = f"EIO=4&transport=polling&sid={sid}".encode()
    await asyncio.wait_for(
        front.dispatch(scope_of("http", query, method), peer.receive, peer.send), 5
    )
    return peer.sent


def _is_unknown_session(sent: list[Message], sid: str) -> None:
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == f"Invalid session {sid}"


async def test_an_unknown_or_dead_owner_is_engineios_unknown_session(data_dir: Path) -> None:
    front = aff.Affinity(data_dir, tag="1-aaaa")
    engineio = socketio.ASGIApp(socketio.AsyncServer(async_mode="asgi"))
    front.wrap(engineio, engineio)
    await front.start()
    try:
        for method in ("GET", "POST"):
            # No such worker: no socket file.
            _is_unknown_session(await _engineio_answer(front, "9-9999.x", method), "9-9999.x")
            # A dead worker's socket file: bound, nobody listening, connect() refused.
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(str(front.socket_of("8-8888")))
            stale.close()
            _is_unknown_session(await _engineio_answer(front, "8-8888.x", method), "8-8888.x")
            front.socket_of("8-8888").unlink()
        # An owner that goes away before it answers: the same answer, from the front.
        owner = aff.Affinity(data_dir, tag="7-7777")

        async def dies(scope: Message, receive: Any, send: Any) -> None:
            raise RuntimeError("worker died")

        owner.wrap(dies, dies)  # type: ignore[arg-type]
        await owner.start()
        _is_unknown_session(await _engineio_answer(front, "7-7777.x"), "7-7777.x")
        peer = Peer({"type": "websocket.connect"})
        query = b"EIO=4&transport=websocket&sid=7-7777.x"
        await asyncio.wait_for(
            front.dispatch(scope_of("websocket", query), peer.receive, peer.send), 5
        )
        assert peer.sent == [{"type": "websocket.close"}]  # refused before the accept
        await owner.stop()
    finally:
        await front.stop()


async def test_the_last_worker_out_removes_the_socket_directory(data_dir: Path) -> None:
    """A long DATA_DIR's sockets live in a directory under /tmp: it goes with the last
    worker, and stays while another worker still has its socket there."""
    deep = data_dir / ("d" * 120)
    first, second = aff.Affinity(deep, tag="4-dddd"), aff.Affinity(deep, tag="5-eeee")
    for worker in (first, second):
        worker.wrap(front_local, front_local)  # type: ignore[arg-type]
        await worker.start()
    assert first.directory == second.directory and first.directory.is_dir()
    await first.stop()
    assert second.path.exists()
    await second.stop()
    assert not second.directory.exists()


async def test_a_restarted_worker_removes_the_sockets_of_dead_pids(data_dir: Path) -> None:
    me = aff.Affinity(data_dir, tag="3-cccc")
    me.directory.mkdir(parents=True)
    dead = me.socket_of("7fffffff-0000")  # no such pid
    dead.touch()
    other = me.directory / "eio-not-a-tag.sock"
    other.touch()
    me.wrap(front_local, front_local)  # type: ignore[arg-type]
    await me.start()
    try:
        assert not dead.exists() and other.exists() and me.path.exists()
    finally:
        await me.stop()


async def test_what_a_forwarded_poll_and_frame_cost(
    pair: tuple[aff.Affinity, aff.Affinity],
) -> None:
    """Printed, not asserted: the bridge's cost, both ends in this one process (so the
    figures are the CPU of both workers together, plus the Unix socket round trips)."""
    front, _ = pair
    query = b"EIO=4&transport=polling&sid=2-bbbb.abc"
    n = 300

    async def one(dispatch: Any) -> None:
        peer = Peer({"type": "http.request", "body": b"40", "more_body": False})
        await dispatch(scope_of("http", query, "POST"), peer.receive, peer.send)

    started = time.perf_counter()
    for _ in range(n):
        await one(owner_app)
    direct = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for _ in range(n):
        await one(front.dispatch)
    forwarded = (time.perf_counter() - started) / n

    frames = 2000
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    echoed = asyncio.Event()
    count = 0

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        nonlocal count
        if message["type"] == "websocket.send":
            count += 1
            echoed.set()

    ws = asyncio.create_task(
        front.dispatch(
            scope_of("websocket", b"EIO=4&transport=websocket&sid=2-bbbb.x"), receive, send
        )
    )
    await inbox.put({"type": "websocket.connect"})
    started = time.perf_counter()
    for _ in range(frames):  # one at a time: a round trip (front -> owner -> front) each
        echoed.clear()
        await inbox.put({"type": "websocket.receive", "text": '42["ticket:stock-update",{}]'})
        await asyncio.wait_for(echoed.wait(), 5)
    round_trip = (time.perf_counter() - started) / frames
    await inbox.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(ws, 5)
    assert count == frames
    print(
        f"\nbridge: HTTP request direct {direct * 1e6:.0f} us, forwarded {forwarded * 1e6:.0f} us"
        f" (+{(forwarded - direct) * 1e6:.0f} us); WebSocket frame round trip through the"
        f" bridge {round_trip * 1e6:.0f} us (two forwarded frames)"
    )
