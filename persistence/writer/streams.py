"""Order-log streams: id arithmetic, the :class:`Entry` shape, which logs exist, and
XREADGROUP over them.

Everything here is about one order-log stream as Redis replies about it; nothing here
decides what the writer does with an entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from engine import keys
from engine.vocabulary import text

ORDER_FIELD = "order"  # the field of a log entry the scripts write the order into


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(stream_id: str) -> str:
    """The smallest stream id greater than ``stream_id``."""
    ms, seq = parse_id(stream_id)
    return f"{ms}-{seq + 1}"


def id_ms(stream_id: str) -> int:
    """When Redis appended the entry (``*`` ids carry the server clock in ms)."""
    return parse_id(stream_id)[0]


@dataclass(frozen=True)
class Entry:
    """One stream entry; ``fields`` is empty when it was deleted while pending."""

    stream: str
    id: str
    fields: Mapping[bytes | str, bytes | str]

    def field(self, name: str) -> bytes | str | None:
        value = self.fields.get(name.encode())
        return self.fields.get(name) if value is None else value


async def order_logs(redis: Redis, *, scan: bool) -> dict[str, str]:
    """The order logs to follow, log stream -> event id: every armed event's
    (``keys.EVENTS``) and, when ``scan``, every log found in the keyspace (the logs of
    events forgotten while no writer ran may still hold entries)."""
    members = {text(m) for m in await redis.smembers(keys.EVENTS)}
    logs = {keys.order_log(e): e for e in sorted(members)}
    if scan:
        async for key in redis.scan_iter(match=keys.order_log("*"), count=1000):
            stream = text(key)
            event_id = keys.event_of_log(stream)
            if event_id is not None:
                logs.setdefault(stream, event_id)
    return logs


async def read_group(
    redis: Redis,
    group: str,
    consumer: str,
    streams: Iterable[str],
    start: Literal[">", "0"],
    *,
    count: int,
    block_ms: int | None,
) -> tuple[list[Entry], bool]:
    """XREADGROUP ``streams`` as ``consumer``: new entries (">") or its own pending ones
    ("0"). Returns the entries and whether some stream had lost its group (NOGROUP: the
    caller recreates the groups; that stream's slot read nothing)."""
    if isinstance(redis, Redis):
        groups: list[dict[Any, Any]] = [dict.fromkeys(streams, start)]
    else:
        # On Redis Cluster one XREADGROUP may only name keys of one slot.
        by_slot: dict[int, dict[Any, Any]] = {}
        for stream in streams:
            by_slot.setdefault(key_slot(stream.encode()), {})[stream] = start
        groups = list(by_slot.values())

    async def one(names: dict[Any, Any]) -> tuple[Any, bool]:
        try:
            return await redis.xreadgroup(
                group, consumer, names, count=count, block=block_ms
            ), False
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            return None, True

    replies = await asyncio.gather(*(one(g) for g in groups))
    entries = [
        Entry(text(stream), text(entry_id), fields or {})
        for reply, _ in replies
        for stream, items in stream_items(reply)
        for entry_id, fields in items
    ]
    return entries, any(missing for _, missing in replies)


def stream_items(reply: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP's reply as (stream, entries) pairs, whatever shape redis-py returned."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [
            (stream, items[0] if items and isinstance(items[0], list) else items)
            for stream, items in reply.items()
        ]
    return [(stream, items) for stream, items in reply]
