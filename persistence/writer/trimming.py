"""Trimming an order log behind the slowest consumer group (``XTRIM MINID``).

A log is cut at the oldest entry some group on it has not acknowledged: its lowest
pending id, else the entry after its last-delivered one. Never MAXLEN, which could cut
entries a group has not read yet.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.vocabulary import text
from persistence.writer.streams import next_id, parse_id


async def trim_point(redis: Redis, stream: str) -> str | None:
    """The oldest id some group on ``stream`` has not acknowledged: its lowest pending
    id, or the id after its last-delivered one. None when the stream has no group."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    point: str | None = None
    for g in groups:
        candidate = next_id(text(g["last-delivered-id"]))
        if int(g["pending"]):
            lowest = (await redis.xpending(stream, text(g["name"])))["min"]
            if lowest is not None:  # None: acknowledged since XINFO was read
                candidate = text(lowest)
        if point is None or parse_id(candidate) < parse_id(point):
            point = candidate
    return point


async def trim_stream(redis: Redis, stream: str, *, approximate: bool) -> int:
    """Trim ``stream`` to its :func:`trim_point`. Returns the entries removed."""
    point = await trim_point(redis, stream)
    if point is None:
        return 0
    return int(await redis.xtrim(stream, minid=point, approximate=approximate))
