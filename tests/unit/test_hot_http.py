"""api/hot_http.py writes a pre-encoded answer exactly as uvicorn's ``send`` writes it
after the process's security headers (api/headers.py ``secured_send``): the same bytes,
and the cycle left in the same state (completed, the next request let in, the connection
closed when it is not kept alive). Where it must not write itself, it writes nothing and
says so, and uvicorn's send answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from api.headers import secured_send
from api.hot_http import _write, hot_hold_of
from api.present import EncodedJSON
from tests.unit.fake_transport import Transport

RID = b"req-1"
DEFAULT_HEADERS = [(b"date", b"Tue, 01 Dec 2026 17:00:00 GMT"), (b"server", b"uvicorn")]


def _cycle(keep_alive: bool = True, access_log: bool = False) -> tuple[Any, Transport, list[int]]:
    transport = Transport()
    completed: list[int] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/orders",
        "query_string": b"",
        "http_version": "1.1",
        "client": ("127.0.0.1", 5000),
        "headers": [],
    }
    cycle = RequestResponseCycle(
        scope=scope,  # type: ignore[arg-type]
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("uvicorn.error"),
        access_logger=logging.getLogger("uvicorn.access"),
        access_log=access_log,
        default_headers=DEFAULT_HEADERS,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: completed.append(1),
    )
    return cycle, transport, completed


def _through_uvicorn(response: EncodedJSON, **kw: Any) -> tuple[bytes, Any, Transport, list[int]]:
    cycle, transport, completed = _cycle(**kw)
    asyncio.run(response(cycle.scope, cycle.receive, secured_send(cycle.send, cycle.scope, RID)))
    return b"".join(transport.written), cycle, transport, completed


def _direct(response: EncodedJSON, **kw: Any) -> tuple[bytes, Any, Transport, list[int]]:
    cycle, transport, completed = _cycle(**kw)
    assert _write(cycle, RID, response) is True
    assert len(transport.written) == 1  # one write, where uvicorn makes two
    return b"".join(transport.written), cycle, transport, completed


RESPONSES = {
    "created": lambda: EncodedJSON({"id": "o1", "status": "RESERVED"}, 201),
    "replayed": lambda: EncodedJSON({"id": "o1"}, 201, ((b"idempotent-replayed", b"true"),)),
    "refused": lambda: EncodedJSON({"code": "sold_out"}, 409, (), b"application/problem+json"),
    "rate limited": lambda: EncodedJSON(
        {"code": "rate_limited"}, 429, ((b"Retry-After", b"7"),), b"application/problem+json"
    ),
}


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("name", list(RESPONSES))
def test_the_same_bytes_and_the_same_end_as_uvicorns_send(name: str, keep_alive: bool) -> None:
    expected, ucycle, utransport, ucompleted = _through_uvicorn(
        RESPONSES[name](), keep_alive=keep_alive
    )
    got, cycle, transport, completed = _direct(RESPONSES[name](), keep_alive=keep_alive)
    assert got == expected
    assert (b"connection: close\r\n" in got) is not keep_alive
    assert got.count(b"x-content-type-options: nosniff\r\n") == 1
    assert got.endswith(b"\r\n\r\n" + RESPONSES[name]().body)
    for a, b in ((ucycle, cycle), (utransport, transport), (ucompleted, completed)):
        if isinstance(a, list):
            assert a == b == [1]
        elif isinstance(a, Transport):
            assert a.closed == b.closed == (not keep_alive)
        else:
            assert (a.response_started, a.response_complete) == (
                b.response_started,
                b.response_complete,
            )
            assert a.response_complete and a.message_event.is_set() and b.message_event.is_set()


def test_the_access_line_is_uvicorns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        _through_uvicorn(RESPONSES["refused"](), access_log=True)
        _direct(RESPONSES["refused"](), access_log=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert lines == ['127.0.0.1:5000 - "POST /api/orders HTTP/1.1" 409'] * 2


@pytest.mark.parametrize(
    "headers",
    [
        ((b"x-frame-options", b"DENY"),),  # sets a security header itself
        ((b"content-length", b"3"),),  # framing: uvicorn's send reads it
        ((b"connection", b"close"),),
        ((b"x-bad name", b"1"),),  # a name uvicorn refuses
        ((b"x-ok", b"a\nb"),),  # a value uvicorn refuses
    ],
)
def test_what_it_must_not_write_goes_through_uvicorn(
    headers: tuple[tuple[bytes, bytes], ...],
) -> None:
    cycle, transport, completed = _cycle()
    assert _write(cycle, RID, EncodedJSON({"a": 1}, 409, headers)) is False
    assert transport.written == [] and completed == [] and not cycle.response_started


def test_a_paused_transport_and_a_gone_client() -> None:
    cycle, transport, completed = _cycle()
    cycle.flow.write_paused = True  # uvicorn's send waits for the drain: let it
    assert _write(cycle, RID, RESPONSES["created"]()) is False
    assert transport.written == []
    cycle, transport, completed = _cycle()
    cycle.disconnected = True  # uvicorn's send drops both messages
    assert _write(cycle, RID, RESPONSES["created"]()) is True
    assert transport.written == [] and completed == []


def test_only_the_apps_own_lean_hold_is_served_below_asgi() -> None:
    class Named:
        onsale_hot = object()  # not a HotHold

    assert hot_hold_of(Named()) is None
    assert hot_hold_of(object()) is None
