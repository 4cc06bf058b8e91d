"""Socket.IO over ``onsale serve --workers 2``, with the official JavaScript client and its
default transports (long-polling first, then the WebSocket upgrade), unchanged.

The workers share one listening socket, so the requests of one Engine.IO session land on
either worker; each session id starts with its owner's tag, and a request for another
worker's session is forwarded to it (api/realtime/affinity.py). Here many clients connect
at once; every one of them joins an event and hears the stock update of a hold, their
session ids are spread over both workers (the tags name the workers' pids), and the
forwarding counter shows requests really crossed between them: without the forwarding the
polling clients fail ("Session ID unknown", a 400 from the worker that does not know it).

An unknown tag and a dead owner (its socket file left behind, nobody listening) are
answered as Engine.IO answers an unknown session: a 400 with its JSON body, never a 500.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.realtime.affinity import socket_dir
from tests.integration.conftest import ApiServer, create_event, register
from tests.integration.test_socketio_js import JS_DIR, node

__all__ = ["node"]  # the fixture, shared with test_socketio_js

CLIENTS = 24  # sockets per run: enough that both workers own some and requests cross
ENGINEIO = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture(scope="module")
def two_workers(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(workers=2, WS_MAX_PER_USER="0", LOG_LEVEL="warning")


@pytest.fixture(scope="module")
def world(two_workers: ApiServer) -> dict[str, Any]:
    org, _ = register(two_workers, "workers-org@example.com", role="ORGANIZADOR")
    buyer, _ = register(two_workers, "workers-buyer@example.com")
    return {"org": org, "buyer": buyer}


def worker_pids(server: ApiServer) -> set[int]:
    assert server.process is not None
    out = subprocess.run(
        ["pgrep", "-a", "-P", str(server.process.pid)], capture_output=True, text=True
    ).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line}


def forwarded(server: ApiServer) -> dict[tuple[str, str], float]:
    """``onsale_socketio_forwarded_total`` by (transport, result), summed over workers."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "onsale_socketio_forwarded":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["transport"], sample.labels["result"])
                    counts[key] = sample.value
    return counts


def run_many(node: str, server: ApiServer, **options: Any) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(JS_DIR / "client.mjs"), server.url, "many", json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output from client.mjs (exit {done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and result["ok"], f"{result}\n{done.stderr[-2000:]}"
    return result


def expected_forwards(transport: str, moved: dict[tuple[str, str], float]) -> bool:
    if transport == "polling":
        return moved.get(("polling", "forwarded"), 0) > 0
    if transport == "default":  # upgrade requests carry the sid: they cross too
        return moved.get(("websocket", "forwarded"), 0) > 0
    return True  # websocket-only: the handshake is the connection, nothing to forward


@pytest.mark.parametrize("transport", ["polling", "default", "websocket"])
def test_many_clients_over_two_workers_all_hear_the_hold(
    node: str, two_workers: ApiServer, world: dict[str, Any], transport: str
) -> None:
    before = forwarded(two_workers)
    sids: list[str] = []
    moved: dict[tuple[str, str], float] = {}
    # The kernel hands each new connection to whichever worker accepts first, and on a
    # busy machine one worker can take a whole run's handshakes: up to 4 runs until both
    # workers own sessions and requests crossed (every run is checked in full).
    for _ in range(4):
        event = create_event(two_workers, world["org"], [("General", 20.0, 500)])
        started = time.perf_counter()
        seen = run_many(
            node,
            two_workers,
            transport=transport,
            clients=CLIENTS - 1,
            token=world["buyer"],
            eventId=event["id"],
            categoriaId=event["categorias"][0]["id"],
            quantities=[2],
        )
        elapsed = time.perf_counter() - started
        assert seen["befores"] == [500] * CLIENTS
        assert seen["updates"] == [498] * CLIENTS
        expected = "polling" if transport == "polling" else "websocket"
        assert seen["transports"] == [expected] * CLIENTS
        sids += seen["sids"]
        after = forwarded(two_workers)
        moved = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
        print(f"\n{transport}: {CLIENTS} clients in {elapsed:.2f} s, forwarded so far {moved}")
        if len({sid.split(".")[0] for sid in sids}) == 2 and expected_forwards(transport, moved):
            break

    # Every session id names its owner: "<tag>.<Engine.IO's own id>", the tag starting
    # with the owner's pid in hex. Both workers own sessions.
    tags = {sid.split(".")[0] for sid in sids}
    assert len(tags) == 2, sids
    assert {int(tag.split("-")[0], 16) for tag in tags} == worker_pids(two_workers)
    assert moved.get(("polling", "owner_gone"), 0) == 0
    assert moved.get(("websocket", "owner_gone"), 0) == 0
    assert expected_forwards(transport, moved), moved
    if transport == "websocket":
        assert sum(moved.values()) == 0, moved


def _expect_unknown_session(r: httpx.Response, sid: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.json() == f"Invalid session {sid}"


def test_an_unknown_tag_is_engineios_unknown_session(two_workers: ApiServer) -> None:
    sid = "nosuchworker.AAAAAAAAAAAAAAAAAAAA"
    with httpx.Client(base_url=two_workers.url, timeout=10) as http:
        for _ in range(4):  # whichever worker takes the request
            _expect_unknown_session(http.get(f"{ENGINEIO}&sid={sid}"), sid)
            _expect_unknown_session(http.post(f"{ENGINEIO}&sid={sid}", content=b"1"), sid)


def test_a_dead_owner_is_engineios_unknown_session(two_workers: ApiServer) -> None:
    """A worker that died without removing its socket file: connection refused."""
    tag = "dead-0000"
    path = socket_dir(two_workers.data_dir) / f"eio-{tag}.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # bound, never listening: connect() is refused
    sid = f"{tag}.AAAAAAAAAAAAAAAAAAAA"
    try:
        before = forwarded(two_workers)
        with httpx.Client(base_url=two_workers.url, timeout=10) as http:
            for _ in range(4):
                _expect_unknown_session(http.get(f"{ENGINEIO}&sid={sid}"), sid)
                _expect_unknown_session(http.post(f"{ENGINEIO}&sid={sid}", content=b"1"), sid)
        after = forwarded(two_workers)
        gone = after.get(("polling", "owner_gone"), 0) - before.get(("polling", "owner_gone"), 0)
        assert gone == 8
    finally:
        path.unlink(missing_ok=True)
