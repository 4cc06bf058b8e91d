"""Shared fixtures: real redis-server processes on free ports, torn down afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from engine.core import Engine, EngineConfig
from engine.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server per test session (per xdist worker); tests flush it."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (AOF on), for tests that kill or restart it."""
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    await client.script_flush()
    yield client
    await client.aclose()


@pytest.fixture
async def engine(redis: Redis) -> Engine:
    eng = Engine(redis, EngineConfig(hold_ttl_ms=600_000))
    await eng.start()
    return eng
