"""A shutdown of ``onsale serve`` (SIGTERM, SIGINT) does not wait for Socket.IO long-polls.

uvicorn's graceful shutdown waits for every request in flight before the app's lifespan
shutdown, and a long-poll GET parked on an Engine.IO session is in flight until Engine.IO
has a packet for it (its next ping, up to 25 s on). So one poller that was idle, or had
vanished mid-GET (its socket left open unread, or reset), held the process for the whole
``timeout_graceful_shutdown`` (10 s), with one worker or several. The server now closes its
Engine.IO sessions as the shutdown begins (api/http_protocol.py, then the gateway): each
parked poll is answered at once (a NOOP, the session closed), a present client reads it
and reconnects by itself, and the process exits within about a second. A request at work
(a hold waiting for a stalled Redis) still gets its answer before the process exits.

Measured on the 2-core development machine: 10.2 s before the fix with one vanished poller
(uvicorn's "timeout graceful shutdown exceeded" in the log), 0.2 s after, as with no poller
at all; the bounds asserted below are 5 s, for a loaded machine."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import socketio

from engine.redis_server import RedisServer
from tests.integration.conftest import ApiServer, create_event, register, start_api

pytestmark = pytest.mark.timeout(180)

EXIT_BOUND_S = 5.0  # was the 10 s graceful timeout; about 0.2-0.7 s when nothing is held
GRACEFUL_TIMEOUT_EXCEEDED = "timeout graceful shutdown exceeded"


def serve(tmp: Path, workers: int = 1, **env: str) -> ApiServer:
    redis = RedisServer(data_dir=tmp / "redis").start()
    try:
        return start_api(tmp, redis, workers, plain_uvicorn=False, **env)
    except BaseException:
        redis.stop()
        raise


def address(api: ApiServer) -> tuple[str, int]:
    host, port = api.url.removeprefix("http://").split(":")
    return host, int(port)


def polling_session(api: ApiServer, token: str | None = None) -> tuple[str, str]:
    """A Socket.IO session over long-polling (signed in with ``token``): the path of its
    polls, and the answer to its CONNECT (``40{...}``, or ``44{...}`` when refused)."""
    path = "/socket.io/?EIO=4&transport=polling"
    with httpx.Client(base_url=api.url, timeout=10) as http:
        opened = http.get(path).text
        assert opened.startswith("0{"), opened
        path += f"&sid={json.loads(opened[1:])['sid']}"
        connect = "40" + (json.dumps({"token": token}) if token else "")
        assert http.post(path, content=connect).text == "OK"
        return path, http.get(path).text


def parked_poll(api: ApiServer, token: str | None = None) -> socket.socket:
    """A raw socket whose long-poll GET is parked on a session of its own."""
    path, connected = polling_session(api, token)
    assert connected.startswith("40{"), connected
    host, port = address(api)
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    sock.settimeout(0.3)
    try:
        early = sock.recv(4096)
    except TimeoutError:
        early = b""
    assert early == b"", f"the poll was answered before the shutdown: {early!r}"
    return sock


def vanish(sock: socket.socket) -> None:
    """A client gone without a word: the connection reset (SO_LINGER 0), no FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def answer(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    """The status and body of the one response on ``sock``, read to the end of the
    connection (no keep-alive during a shutdown: the server closes after answering)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunked(body)
    return int(head.split()[1]), body


def _dechunked(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


def signal_and_time(api: ApiServer, sig: int) -> float:
    assert api.process is not None
    started = time.monotonic()
    api.process.send_signal(sig)
    try:
        api.process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within 30 s of the signal:\n{api.log()}")
    return time.monotonic() - started


def stop(api: ApiServer) -> None:
    api.stop()
    api.redis.stop()


@pytest.mark.parametrize(
    ("workers", "sig", "env"),
    [
        (1, signal.SIGTERM, {}),
        (1, signal.SIGINT, {"HOT_HOLD": "false"}),  # the plain protocol, not the lean hold's
        (2, signal.SIGTERM, {}),
    ],
    ids=["1-worker-sigterm", "1-worker-sigint-no-hot-hold", "2-workers-sigterm"],
)
def test_a_shutdown_answers_parked_long_polls_at_once(
    tmp_path: Path, workers: int, sig: int, env: dict[str, str]
) -> None:
    api = serve(tmp_path, workers, **env)
    try:
        # With two workers a poll lands on either: on its session's worker or forwarded
        # to it. Three sessions of each kind make both ways all but certain.
        count = 3 if workers > 1 else 1
        present = [parked_poll(api) for _ in range(count)]  # reads its answer
        left_open = [parked_poll(api) for _ in range(count)]  # never reads it
        reset = [parked_poll(api) for _ in range(count)]
        for sock in reset:
            vanish(sock)
        time.sleep(0.3)
        answers: list[tuple[int, bytes]] = []
        readers = [
            threading.Thread(target=lambda s=sock: answers.append(answer(s, 20)))
            for sock in present
        ]
        for reader in readers:
            reader.start()
        elapsed = signal_and_time(api, sig)
        for reader in readers:
            reader.join(25)
        log = api.log()
        print(f"exit {elapsed:.2f} s after the signal")  # with -s
        assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s:\n{log}"
        assert GRACEFUL_TIMEOUT_EXCEEDED not in log, log
        # Every parked poll was answered, with Engine.IO's NOOP ("6"), the unread ones
        # too; their sessions are closed.
        assert answers == [(200, b"6")] * count, answers
        assert [answer(sock, 5) for sock in left_open] == [(200, b"6")] * count
        assert "Traceback" not in log, log
    finally:
        stop(api)


async def test_a_polling_client_reconnects_by_itself_once_the_server_is_back(
    tmp_path: Path,
) -> None:
    api = serve(tmp_path)
    again: ApiServer | None = None
    client = socketio.AsyncClient(
        reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5
    )
    connects: list[str] = []
    disconnects: list[Any] = []
    client.on("connect", lambda: connects.append(str(client.get_sid())))
    client.on("disconnect", lambda *reason: disconnects.append(reason))
    try:
        await client.connect(api.url, transports=["polling"], wait_timeout=5)
        await asyncio.sleep(0.5)  # its long-poll is parked now
        elapsed = await asyncio.to_thread(signal_and_time, api, signal.SIGTERM)
        assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s:\n{api.log()}"
        async with asyncio.timeout(5):
            while not disconnects:
                await asyncio.sleep(0.05)
        # The same port again: the client, retrying on its own, is back in.
        port = str(address(api)[1])
        again = await asyncio.to_thread(start_api, tmp_path, api.redis, PORT=port)
        async with asyncio.timeout(30):
            while len(connects) < 2:
                await asyncio.sleep(0.05)
        assert client.connected and connects[0] != connects[1], connects
    finally:
        client.reconnection = False
        await client.disconnect()
        if again is not None:
            again.stop()
        stop(api)


def test_a_poller_whose_connection_resets_mid_poll_is_released_at_once(
    tmp_path: Path,
) -> None:
    """As the Node server does ("poll connection closed prematurely"): the session closes
    when its GET's connection goes, so it stops counting against WS_MAX_PER_USER then,
    not at the ping timeout (25 s + 20 s on). A poller that vanished with its connection
    left open is still only found out by the ping timeout."""
    api = serve(tmp_path, WS_MAX_PER_USER="1")
    try:
        token, _ = register(api, "reset-poller@example.com")
        parked = parked_poll(api, token)
        _, refused = polling_session(api, token)  # one socket per user: the second is refused
        assert '"too_many_user_sockets"' in refused, refused
        vanish(parked)
        deadline = time.monotonic() + 5
        while True:
            _, again = polling_session(api, token)
            if again.startswith("40{") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again.startswith("40{"), again
        assert "Traceback" not in api.log(), api.log()
    finally:
        stop(api)


def test_a_hold_in_flight_at_shutdown_still_gets_its_answer(tmp_path: Path) -> None:
    # Redis is stopped while the hold waits for it: a timeout above the stall.
    api = serve(tmp_path, REDIS_TIMEOUT_S="30")
    assert isinstance(api.redis, RedisServer) and api.redis.process is not None
    redis_pid = api.redis.process.pid
    try:
        org, _ = register(api, "shutdown-org@example.com", role="ORGANIZADOR")
        buyer, _ = register(api, "shutdown-buyer@example.com")
        event = create_event(api, org, [("A", 10.0, 10)])
        vanished = parked_poll(api)  # as above: would hold the shutdown for 10 s
        body = json.dumps(
            {
                "eventoId": event["id"],
                "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 2}],
            }
        ).encode()
        host, port = address(api)
        request = (
            f"POST /api/orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {buyer}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        assert api.process is not None
        hold = socket.create_connection((host, port), timeout=10)
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            hold.sendall(request)
            _accepted(api.process.pid, hold.getsockname()[1])
            time.sleep(0.3)  # read and started: it waits for Redis now
            result: list[tuple[int, bytes]] = []
            reader = threading.Thread(target=lambda: result.append(answer(hold, 30)))
            reader.start()
            started = time.monotonic()
            api.process.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            assert api.process.poll() is None, "the server exited before the hold's answer"
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        reader.join(30)
        api.process.wait(30)
        elapsed = time.monotonic() - started
        log = api.log()
        print(f"exit {elapsed:.2f} s after the signal, 1.5 s of it waiting for Redis")
        assert result and result[0][0] == 201, (result, log)
        order: dict[str, Any] = json.loads(result[0][1])
        assert order["estado"] == "RESERVED", order
        assert elapsed < 1.5 + EXIT_BOUND_S, f"exit took {elapsed:.2f} s:\n{log}"
        assert GRACEFUL_TIMEOUT_EXCEEDED not in log, log
        assert answer(vanished, 5) == (200, b"6")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(redis_pid, signal.SIGCONT)
        stop(api)


def _accepted(pid: int, client_port: int, timeout: float = 10) -> None:
    """Wait until the server process has accepted the connection from ``client_port``
    (a connection still in the listen backlog would be refused by the shutdown)."""
    deadline = time.monotonic() + timeout
    process = psutil.Process(pid)
    while time.monotonic() < deadline:
        if any(c.raddr and c.raddr.port == client_port for c in process.net_connections("tcp")):
            return
        time.sleep(0.02)
    pytest.fail("the server did not accept the hold's connection")
