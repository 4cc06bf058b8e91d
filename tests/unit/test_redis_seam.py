"""Pins what engine/redis_seam.py relies on in redis-py's private connection internals.

A redis-py upgrade that renames the stream pair or changes the pool's hand-out fails here,
by name, instead of on the first hold in production."""

from __future__ import annotations

import asyncio

import hiredis
import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool

from engine import redis_seam


def test_the_pool_api_the_seam_calls_exists() -> None:
    assert callable(ConnectionPool.get_connection)
    assert callable(ConnectionPool.release)
    assert callable(AbstractConnection.disconnect)


async def test_a_taken_connection_exposes_its_stream_pair_and_goes_back(redis: Redis) -> None:
    pool = redis.connection_pool
    conn = await redis_seam.take_connection(redis)
    reader, writer = redis_seam.streams(conn)
    assert isinstance(reader, asyncio.StreamReader)
    assert isinstance(writer, asyncio.StreamWriter)
    # The pair is the live connection: a command written to it is answered on it.
    writer.write(hiredis.pack_command(("PING",)))
    parser = hiredis.Reader()
    parser.feed(await asyncio.wait_for(reader.read(64), 5))
    assert parser.gets() == b"PONG"
    in_use = len(pool._in_use_connections)
    await redis_seam.give_back(redis, conn)
    assert len(pool._in_use_connections) == in_use - 1
    assert await redis.ping()


def test_a_connection_without_streams_fails_loudly() -> None:
    class Foreign:
        pass

    with pytest.raises(RuntimeError, match="redis_seam"):
        redis_seam.streams(Foreign())


def test_the_client_names_its_version_once_not_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py asks importlib.metadata for its own version on every new connection unless
    the client is given its DriverInfo (engine/connection.py): ~265 us a connection."""
    import redis
    from redis import utils

    from engine.connection import redis_client

    client = redis_client("redis://127.0.0.1:1/0")
    info = client.connection_pool.connection_kwargs["driver_info"]
    assert info.lib_version == redis.__version__

    def no_metadata() -> str:
        raise AssertionError("a new connection read redis-py's package metadata")

    monkeypatch.setattr(utils, "get_lib_version", no_metadata)
    client.connection_pool.make_connection()
