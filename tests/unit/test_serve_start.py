"""What ``onsale serve`` does before uvicorn, for servers that share a DATA_DIR: the port
bound first (a port in use is one line, exit 3), prometheus_client's multiprocess
directory per server (``DATA_DIR/prometheus/<PORT>``) with only dead processes' files
removed, and one embedded redis-server per DATA_DIR however many commands start together
(api/commands/serve.py, api/runtime.py)."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.commands.serve import _listen, _metrics_dir
from api.runtime import _starting
from api.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture
def zombie_pid() -> Iterator[int]:
    """A child that exited and is not reaped yet (os.kill(pid, 0) still succeeds)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield child.pid
    child.wait()


def _files(directory: Path, *pids: int | str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for pid in pids:
        for kind in ("counter", "histogram", "gauge_livesum"):
            path = directory / f"{kind}_{pid}.db"
            path.write_bytes(b"x")
            paths.append(path)
    return paths


def test_the_default_directory_is_per_port_and_keeps_live_processes_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_pid: int, zombie_pid: int
) -> None:
    monkeypatch.setenv(MULTIPROC, "")  # unset for _metrics_dir; restored after the test
    settings = Settings(data_dir=tmp_path)
    directory = tmp_path / "prometheus" / "4000"
    live = _files(directory, live_pid)
    stale = _files(directory, _dead_pid(), zombie_pid, os.getpid(), "notapid")
    other = _files(tmp_path / "prometheus" / "4001", _dead_pid())  # another server's
    _metrics_dir(settings, 2, 4000)
    assert os.environ[MULTIPROC] == str(directory.resolve())
    assert all(p.exists() for p in live)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in other)


def test_an_explicit_directory_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_pid: int
) -> None:
    directory = tmp_path / "shared"
    monkeypatch.setenv(MULTIPROC, str(directory))
    live = _files(directory, live_pid)
    stale = _files(directory, _dead_pid())
    _metrics_dir(Settings(data_dir=tmp_path / "data"), 1, 4000)
    assert os.environ[MULTIPROC] == str(directory.resolve())
    assert all(p.exists() for p in live) and not any(p.exists() for p in stale)
    assert not (tmp_path / "data").exists()


def test_one_worker_without_a_directory_is_not_multiprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC, "")
    _metrics_dir(Settings(data_dir=tmp_path), 1, 4000)
    assert os.environ[MULTIPROC] == ""
    assert not (tmp_path / "prometheus").exists()


def test_a_port_in_use_is_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    taken = _listen("127.0.0.1", 0, "PORT=0")
    port = taken.getsockname()[1]
    try:
        with pytest.raises(SystemExit) as exit_:
            _listen("127.0.0.1", port, f"PORT={port}")
    finally:
        taken.close()
    assert exit_.value.code == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"onsale: cannot listen on PORT={port} (127.0.0.1:{port}): Address already in use "
        "(another server is running there; nothing was changed)\n"
    )


def test_the_socket_listens_at_once_and_is_inheritable() -> None:
    sock = _listen("127.0.0.1", 0, "PORT=0")
    try:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.get_inheritable()
        # A plain bind with SO_REUSEADDR, as uvicorn's, no longer shares the port.
        other = socket.socket()
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            other.bind(sock.getsockname())
        other.close()
    finally:
        sock.close()


ENSURE = """
import sys, time
from pathlib import Path
from api.runtime import ensure_redis
from api.settings import Settings
url, server = ensure_redis(Settings(data_dir=Path(sys.argv[1])))
print(url, server is not None, flush=True)
time.sleep(4)  # the starter keeps its server (it dies with its parent) while the other looks
"""


def test_commands_starting_together_start_one_embedded_redis(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ONSALE_EMBEDDED_REDIS_URL")
    }
    env["PYTHONPATH"] = str(REPO)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENSURE, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    lines = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs), lines
    assert len({url for url, _ in lines}) == 1, lines
    assert sorted(started for _, started in lines) == ["False", "False", "True"], lines


HOLD = """
import sys, time
from pathlib import Path
from api.runtime import _starting
with _starting(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_starter_leaves_no_lock(tmp_path: Path) -> None:
    lock = tmp_path / "redis" / "redis.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    with lock.open("a") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    started = time.monotonic()
    with _starting(lock):
        assert time.monotonic() - started < 2
