"""The hold served by ``onsale serve``'s HTTP protocol (api/hot_http.py) over raw sockets:
what an HTTP/1.1 client may do that httpx does not. Pipelined holds on one connection are
answered in order, each once; a hold sent with ``Expect: 100-continue`` gets the 100
before its body is read; ``Connection: close`` gets ``connection: close`` and the socket
closed after the answer; a client that leaves mid-hold takes nothing with it (the hold is
made, the audit stays clean, the server answers the next client)."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx
import pytest

from tests.integration.conftest import (
    ApiServer,
    assert_audit_clean,
    bearer,
    create_event,
    register,
    unique_email,
)

pytestmark = pytest.mark.timeout(120)

STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


@pytest.fixture(scope="module")
def served(api_factory: Any) -> ApiServer:
    return api_factory(HOT_HOLD="true")


def _request(api: ApiServer, token: str, body: dict[str, Any], **headers: str) -> bytes:
    raw = json.dumps(body).encode()
    lines = [
        b"POST /api/orders HTTP/1.1",
        b"Host: " + api.url.removeprefix("http://").encode(),
        b"Authorization: Bearer " + token.encode(),
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(raw)).encode(),
        *(f"{k}: {v}".encode() for k, v in headers.items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + raw


def _connect(api: ApiServer) -> socket.socket:
    host, port = api.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=15)


def _responses(sock: socket.socket, count: int) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """``count`` whole responses read off ``sock`` (Content-Length framing)."""
    data = b""
    out: list[tuple[int, dict[bytes, bytes], bytes]] = []
    while len(out) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].split(b"\r\n")
            headers = dict(line.split(b": ", 1) for line in head[1:])
            length = int(headers.get(b"content-length", b"0"))
            if len(data) >= head_end + 4 + length:
                status = STATUS.match(head[0])
                assert status, head[0]
                body = data[head_end + 4 : head_end + 4 + length]
                out.append((int(status.group(1)), headers, body))
                data = data[head_end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(out)} of {count} responses"
        data += chunk
    assert data == b"", data
    return out


def _written(api: ApiServer) -> float:
    text = httpx.get(f"{api.url}/metrics", timeout=30).text
    found = re.search(r"^onsale_hot_hold_written_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _order(event: dict[str, Any], qty: int = 1) -> dict[str, Any]:
    return {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": qty}],
    }


@pytest.fixture(scope="module")
def world(served: ApiServer) -> tuple[str, dict[str, Any]]:
    org = register(served, unique_email("org"), role="ORGANIZADOR")[0]
    buyer = register(served, unique_email("buyer"))[0]
    event = create_event(served, org, [("A", 10.0, 5)])
    r = httpx.get(f"{served.url}/api/orders/my-orders", headers=bearer(buyer))
    assert r.status_code == 200  # the token is cached: the lean hold serves it
    return buyer, event


def test_pipelined_holds_are_answered_in_order(
    served: ApiServer, world: tuple[str, dict[str, Any]]
) -> None:
    buyer, event = world
    before = _written(served)
    with _connect(served) as sock:
        sock.sendall(
            _request(served, buyer, _order(event), **{"X-Request-Id": "p-1"})
            + _request(served, buyer, _order(event, 99), **{"X-Request-Id": "p-2"})
            + _request(served, buyer, _order(event), **{"X-Request-Id": "p-3"})
        )
        answers = _responses(sock, 3)
    assert [status for status, _, _ in answers] == [201, 422, 201]
    assert [h[b"x-request-id"] for _, h, _ in answers] == [b"p-1", b"p-2", b"p-3"]
    ids = {json.loads(body)["id"] for status, _, body in answers if status == 201}
    assert len(ids) == 2
    assert _written(served) - before == 3


def test_expect_100_continue_gets_the_100_before_the_body(
    served: ApiServer, world: tuple[str, dict[str, Any]]
) -> None:
    buyer, event = world
    request = _request(served, buyer, _order(event), Expect="100-continue")
    head, body = request.split(b"\r\n\r\n", 1)
    before = _written(served)
    with _connect(served) as sock:
        sock.sendall(head + b"\r\n\r\n")
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        ((status, headers, answer),) = _responses(sock, 1)
    assert status == 201, answer
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert _written(served) - before == 1  # the lean hold's, not Litestar's


def test_connection_close_is_honoured(served: ApiServer, world: tuple[str, dict[str, Any]]) -> None:
    buyer, event = world
    before = _written(served)
    with _connect(served) as sock:
        sock.sendall(_request(served, buyer, _order(event), Connection="close"))
        ((status, headers, _),) = _responses(sock, 1)
        assert sock.recv(65536) == b""  # closed by the server
    assert status == 201
    assert headers[b"connection"] == b"close"
    assert _written(served) - before == 1


def test_a_client_that_leaves_mid_hold_takes_nothing_with_it(
    served: ApiServer, world: tuple[str, dict[str, Any]]
) -> None:
    buyer, event = world
    for _ in range(20):
        sock = _connect(served)
        sock.sendall(_request(served, buyer, _order(event)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, at once
    r = httpx.post(
        f"{served.url}/api/orders", json=_order(event), headers=bearer(buyer), timeout=30
    )
    assert r.status_code in (201, 409), r.text
    assert_audit_clean(served)


def test_expect_100_continue_with_the_body_sent_anyway_is_answered_as_uvicorn_does(
    served: ApiServer, world: tuple[str, dict[str, Any]]
) -> None:
    """uvicorn's ``receive`` sends the 100 even when the body came with the headers: the
    protocol then lets the lean hold receive the body the same way."""
    buyer, event = world
    with _connect(served) as sock:
        sock.sendall(_request(served, buyer, _order(event), Expect="100-continue"))
        data = b""
        while data.count(b"\r\n\r\n") < 2:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 ")
