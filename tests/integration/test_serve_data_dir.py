"""Two ``onsale serve`` on one DATA_DIR (``--workers 2``: prometheus_client's multiprocess
files on disk).

* A second one started by mistake on the port in use stops before it touches anything,
  with one line on stderr (exit 3): the running server's metric files and counts stay.
* One on another port (several API processes on one store, docs/scaling.md and
  docs/queue.md) keeps its own directory, ``DATA_DIR/prometheus/<PORT>``: each server
  counts only its own requests, and neither's start or stop moves the other's counts or
  removes its Engine.IO sockets.
* A server killed with SIGKILL leaves nothing that stops the next start on the same
  DATA_DIR and port, and that start's counts begin at zero (the dead run's files go).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.realtime.affinity import socket_dir
from engine.redis_server import RedisServer
from tests.integration.conftest import (
    REPO,
    ApiServer,
    create_event,
    register,
    start_api,
    unique_email,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[ApiServer]:
    server = start_api(tmp_path_factory.mktemp("first"), redis, workers=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(first: ApiServer) -> dict[str, Any]:
    org, _ = register(first, unique_email("org"), role="ORGANIZADOR")
    return {
        "event": create_event(first, org, [("General", 10, 1000)]),
        "buyer": register(first, unique_email("buyer"))[0],
    }


def _port(api: ApiServer) -> int:
    return int(api.url.rsplit(":", 1)[1])


def _metrics_dir(api: ApiServer, data_dir: Path | None = None) -> Path:
    return (data_dir or api.data_dir) / "prometheus" / str(_port(api))


def _holds(api: ApiServer) -> float:
    """``onsale_holds_total{result="created"}`` on this server's /metrics."""
    r = httpx.get(f"{api.url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == "onsale_holds_total" and s.labels.get("result") == "created"
    )


def _hold(api: ApiServer, world: dict[str, Any], times: int = 1) -> None:
    event = world["event"]
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    for _ in range(times):
        r = httpx.post(  # a fresh connection each time: either worker takes it
            f"{api.url}/api/orders",
            json=body,
            headers={"Authorization": f"Bearer {world['buyer']}", "Connection": "close"},
            timeout=30,
        )
        assert r.status_code == 201, r.text


def _serve(env: dict[str, str], workers: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--workers", str(workers)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize("workers", [2, 1])
def test_a_second_serve_on_the_port_in_use_fails_in_one_line_and_changes_nothing(
    first: ApiServer, world: dict[str, Any], workers: int
) -> None:
    before = _holds(first)
    _hold(first, world, 3)
    assert _holds(first) == before + 3
    directory = _metrics_dir(first)
    files = {p.name: p.stat().st_ino for p in directory.glob("*.db")}
    assert any(name.startswith("counter_") for name in files), files

    done = _serve(first.env, workers)  # the same DATA_DIR, the same PORT

    port = _port(first)
    assert done.returncode == 3, done
    assert done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        f"onsale: cannot listen on PORT={port} (127.0.0.1:{port}): Address already in use "
        "(another server is running there; nothing was changed)"
    ]
    assert {p.name: p.stat().st_ino for p in directory.glob("*.db")} == files
    assert _holds(first) == before + 3
    _hold(first, world)
    assert _holds(first) == before + 4


def test_a_second_serve_on_another_port_keeps_its_own_counts(
    first: ApiServer, world: dict[str, Any], redis: RedisServer, tmp_path: Path
) -> None:
    _hold(first, world, 2)
    counted = _holds(first)
    sockets = set(socket_dir(first.data_dir).glob("eio-*.sock"))
    assert len(sockets) == 2, sockets  # the first server's two workers
    second = start_api(tmp_path, redis, workers=2, DATA_DIR=str(first.data_dir))
    try:
        assert _holds(second) == 0
        assert _holds(first) == counted
        _hold(second, world, 2)
        assert _holds(second) == 2
        assert _holds(first) == counted
        assert _metrics_dir(second, first.data_dir).is_dir()
        assert set(socket_dir(first.data_dir).glob("eio-*.sock")) > sockets
    finally:
        second.stop()
    assert second.process is not None and second.process.returncode == 0, second.log()
    assert _holds(first) == counted
    assert set(socket_dir(first.data_dir).glob("eio-*.sock")) == sockets
    _hold(first, world)
    assert _holds(first) == counted + 1


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_descendants(int(child))]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_killed_server_leaves_nothing_that_stops_the_next_start(
    tmp_path: Path, redis: RedisServer
) -> None:
    server = start_api(tmp_path, redis, workers=2)
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    world = {
        "event": create_event(server, org, [("General", 10, 100)]),
        "buyer": register(server, unique_email("buyer"))[0],
    }
    _hold(server, world, 2)
    assert _holds(server) == 2
    assert server.process is not None
    supervisor = server.process.pid
    workers = _descendants(supervisor)
    assert len(workers) >= 2, workers
    for pid in [supervisor, *workers]:  # the supervisor first: no worker restarted
        os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    directory = _metrics_dir(server)
    dead = {p.name for p in directory.glob("*.db")}
    assert any(name.startswith("counter_") for name in dead), dead

    again = start_api(tmp_path, redis, workers=2, PORT=str(_port(server)))
    try:
        assert _holds(again) == 0  # the killed run's files are gone, nothing else was
        _hold(again, world)
        assert _holds(again) == 1
        assert not dead & {p.name for p in directory.glob("*.db")}
        # The killed workers' Engine.IO sockets: gone, or (zombie pids, not reaped here)
        # left but refused, which the affinity answers as a session whose owner is gone.
        for path in socket_dir(again.data_dir).glob("eio-*.sock"):
            if not _alive(int(path.name.split("-")[1], 16)):
                with socket.socket(socket.AF_UNIX) as unix, pytest.raises(ConnectionRefusedError):
                    unix.connect(str(path))
    finally:
        again.stop()
