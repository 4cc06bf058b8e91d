"""The embedded redis-server as `make run` starts it: a relative DATA_DIR, data kept."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.redis_server import RedisServer


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16)


def test_relative_data_dir_starts_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    server = RedisServer(data_dir=Path("var") / "redis", appendonly=True)
    server.start()
    try:
        assert _ping(server.port).startswith(b"+PONG")
        assert (tmp_path / "var" / "redis" / f"redis-{server.port}.log").exists()
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
            s.sendall(b"SET k v\r\n")
            assert s.recv(16).startswith(b"+OK")
    finally:
        server.stop()
    again = RedisServer(data_dir=Path("var") / "redis", appendonly=True).start()
    try:
        with socket.create_connection(("127.0.0.1", again.port), timeout=2) as s:
            s.sendall(b"GET k\r\n")
            assert s.recv(16) == b"$1\r\nv\r\n"  # the AOF was replayed on another port
    finally:
        again.stop()
