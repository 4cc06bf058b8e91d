"""A script followed by ``WAIT`` on one connection of its own
(``CONFIRM_DURABILITY=replica``), for :meth:`engine.scripts.Scripts.call_then_wait`.

Redis' WAIT counts only the writes of the connection that sends it, so it must follow the
script on the connection that ran it; and it blocks that connection until the replicas
answer or the timeout passes, so it is never the shared pipelined one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import redis_seam
from engine.lua_sources import Script, is_noscript


async def call_then_wait(
    redis: Redis,
    script: Script,
    cmd: tuple[Any, ...],
    key: str,
    replicas: int,
    timeout_ms: int,
    timeout_s: float | None,
) -> tuple[Any, int]:
    """Run ``script`` (its EVALSHA arguments ``cmd``, ``key`` its first key), then ``WAIT
    replicas timeout_ms`` right behind it on the same connection; returns the script's
    reply and how many replicas acknowledged.

    The two commands go in one write on a connection of their own (on a cluster, of the
    primary that owns the keys' slot). A lost connection, NOSCRIPT or a moved slot send
    both again (the scripts are idempotent by their request id)."""
    packed = hiredis.pack_command(("EVALSHA", *cmd))
    wait: tuple[Any, ...] = ("WAIT", replicas, timeout_ms)
    packed += hiredis.pack_command(wait)
    bound = timeout_ms / 1000 + (timeout_s or 10.0)
    for attempt in range(3):
        last = attempt == 2
        try:
            reply, acked = await _two_replies(redis, key, packed, bound)
        except (RedisConnectionError, OSError):
            if last:
                raise
            await _refresh_topology(redis)
            continue
        if isinstance(reply, ResponseError) and not last:
            if is_noscript(reply):
                await redis.script_load(script.source)
                continue
            if str(reply).startswith(("MOVED", "ASK")):
                await _refresh_topology(redis)
                continue
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(acked, BaseException):
            raise acked
        return reply, int(acked)
    raise AssertionError("unreachable")  # pragma: no cover


async def _two_replies(redis: Redis, key: str, packed: bytes, bound: float) -> tuple[Any, Any]:
    """``packed`` (two commands) on one connection of its own; their two replies (an
    error reply as its exception object), within ``bound`` seconds."""
    node = None if isinstance(redis, Redis) else redis.get_node_from_key(key)
    if node is None:
        conn = await redis_seam.take_connection(redis)
    else:
        conn = await redis_seam.take_node_connection(node)
    healthy = False
    try:
        reader, writer = redis_seam.streams(conn)
        parser = hiredis.Reader(replyError=ResponseError)
        replies: list[Any] = []
        writer.write(packed)
        try:
            async with asyncio.timeout(bound):
                while len(replies) < 2:
                    data = await reader.read(65536)
                    if not data:
                        raise RedisConnectionError("Redis closed the connection")
                    parser.feed(data)
                    while (reply := parser.gets()) is not False:
                        replies.append(reply)
        except TimeoutError:
            raise RedisTimeoutError(f"Redis did not answer within {bound:g}s") from None
        healthy = len(replies) == 2
        if not healthy:
            raise RedisConnectionError("replies out of step with the commands")
        return replies[0], replies[1]
    finally:
        await redis_seam.put_back(redis if node is None else node, conn, healthy)


async def _refresh_topology(redis: Redis) -> None:
    if not isinstance(redis, Redis):
        with contextlib.suppress(Exception):
            await redis.nodes_manager.initialize()
