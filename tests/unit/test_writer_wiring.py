"""How processes build the order writer, its Redis client and its store: one consumer
naming rule, one CLI, a store port that imports no adapter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from api.cli import build_parser
from engine.connection import redis_client
from persistence.aio import AsyncStore
from persistence.writer import build_writer, consumer_name

REPO = Path(__file__).resolve().parents[2]


class _NoStore(AsyncStore):
    def __init__(self) -> None:  # the writer is only built here, never run
        pass


def test_the_consumer_is_named_host_pid_unless_given_a_name() -> None:
    assert consumer_name() == f"{socket.gethostname()}-{os.getpid()}"
    assert consumer_name("w1") == "w1"


def test_build_writer_names_the_consumer_and_passes_the_tuning() -> None:
    redis = Redis()
    writer = build_writer(redis, _NoStore(), linger_ms=20, min_idle_ms=300, batch=200)
    assert writer.consumer == consumer_name()
    assert (writer.linger_s, writer.min_idle_ms, writer.batch) == (0.02, 300, 200)

    assert build_writer(redis, _NoStore(), name="w2").consumer == "w2"


def test_onsale_writer_takes_the_tuning_flags() -> None:
    args = build_parser().parse_args(["writer", "--name", "w", "--min-idle-ms", "300"])
    assert (args.name, args.min_idle_ms, args.batch) == ("w", 300, None)


def test_one_factory_builds_standalone_and_cluster_clients() -> None:
    plain = redis_client("redis://127.0.0.1:1/0", max_connections=8)
    assert isinstance(plain, Redis)
    assert plain.connection_pool.max_connections == 8
    assert isinstance(redis_client("redis://127.0.0.1:1/0", cluster=True), RedisCluster)


def test_the_store_port_imports_no_adapter() -> None:
    code = (
        "import sys, persistence.store, persistence.factory; "
        "print(sorted(m for m in sys.modules if m in ('persistence.sqlite', 'persistence.mongo')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
