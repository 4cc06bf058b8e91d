"""The one place onsale reaches into redis-py's private connection internals.

The engine's pipelined script connection (:mod:`engine.scripts`) takes a connection out of
redis-py's asyncio pool (connected, authenticated, ``SELECT``-ed by redis-py) and then
writes packed commands to its ``asyncio.StreamWriter`` and reads replies from its
``asyncio.StreamReader`` itself, with one hiredis parser per connection. redis-py's public
API offers no way to do that: its pipeline awaits a drain and wraps every write in
``asyncio.wait_for``, which cost ~120 us of CPU per round trip (docs/performance.md).

What is relied on, as of redis-py 7 and 8 (``redis.asyncio.connection``):

* ``AbstractConnection._reader`` / ``._writer``: the stream pair of a connected
  connection (set by ``connect()``, cleared by ``disconnect()``);
* ``ConnectionPool.get_connection()`` returns a connected connection and
  ``ConnectionPool.release(conn)`` takes it back;
* on a cluster, ``ClusterNode.acquire_connection()`` hands out one of the node's
  connections (maybe not connected yet: ``connect()``) and ``ClusterNode.release(conn)``
  takes it back.

``tests/unit/test_redis_seam.py`` pins all of it against the installed redis-py, so an
upgrade that moves them fails the build loudly instead of the first hold in production;
pyproject bounds the version.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis


async def take_connection(redis: Redis) -> Any:
    """A connected, authenticated connection out of the client's pool."""
    return await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]


def streams(conn: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The asyncio stream pair of a connection :func:`take_connection` returned."""
    reader: asyncio.StreamReader | None = getattr(conn, "_reader", None)
    writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
    if reader is None or writer is None:
        raise RuntimeError(
            "redis-py's connection has no _reader/_writer: the installed redis-py "
            "is not one engine/redis_seam.py supports"
        )
    return reader, writer


async def give_back(redis: Redis, conn: Any) -> None:
    """Disconnect a connection taken with :func:`take_connection` and return it."""
    try:
        await conn.disconnect(nowait=True)
    finally:
        await redis.connection_pool.release(conn)


async def take_node_connection(node: Any) -> Any:
    """A connected connection of one Redis Cluster node (``ClusterNode``)."""
    conn = node.acquire_connection()
    if not conn.is_connected:
        try:
            await conn.connect()
        except BaseException:
            node.release(conn)
            raise
    return conn


async def put_back(owner: Any, conn: Any, healthy: bool) -> None:
    """Return a connection taken with :func:`take_connection` (``owner`` the client) or
    :func:`take_node_connection` (``owner`` the node): as it is when ``healthy`` (every
    reply to what was written on it has been read), else disconnected first."""
    try:
        if not healthy:
            await conn.disconnect(nowait=True)
    finally:
        if isinstance(owner, Redis):
            await owner.connection_pool.release(conn)
        else:
            owner.release(conn)
