"""Consumer-group bookkeeping on the order logs: create a group, tell whether it has
consumed everything, acknowledge, claim idle entries, count deliveries, forget idle
consumers.

Plain functions over ``(redis, stream, group)``; the policy (when to call them, what to
do with the answer) is :class:`persistence.writer.consumer.OrderWriter`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.vocabulary import text
from persistence.writer.streams import Entry, next_id, parse_id

log = logging.getLogger(__name__)


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` at id 0 (and the stream), unless it exists."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


async def consumed(redis: Redis, stream: str, group: str) -> bool:
    """True when ``group`` has acknowledged every entry of ``stream`` (or it is gone)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return True  # the stream is gone
    info = next((g for g in groups if text(g["name"]) == group), None)
    if info is None or int(info["pending"]):
        return False
    last = text(info["last-delivered-id"])
    return not await redis.xrange(stream, min=next_id(last), max="+", count=1)


async def ack(redis: Redis, group: str, entries: Sequence[Entry]) -> int:
    """XACK ``entries`` (any streams) in one pipeline; how many were still pending."""
    if not entries:
        return 0
    by_stream: dict[str, list[str]] = {}
    for e in entries:
        by_stream.setdefault(e.stream, []).append(e.id)
    pipe = redis.pipeline(transaction=False)
    for stream, ids in by_stream.items():
        pipe.xack(stream, group, *ids)
    return sum(int(n) for n in await pipe.execute())


@dataclass
class Claimed:
    """What :func:`claim_idle` took over from other consumers of one stream."""

    entries: list[Entry] = field(default_factory=list)
    orphaned: bool = False  # Redis 6.2: an entry deleted while pending, claimed without id
    deleted: int = 0  # Redis >= 7: ids deleted while pending (dropped from the PEL)


async def claim_idle(
    redis: Redis,
    stream: str,
    group: str,
    consumer: str,
    min_idle_ms: int,
    *,
    count: int,
    enough: int,
) -> Claimed:
    """XAUTOCLAIM entries of ``stream`` idle > ``min_idle_ms`` to ``consumer``, ``count``
    a page, until the stream has no more or ``enough`` were claimed. A missing group
    (NOGROUP) is created and nothing more is claimed from it."""
    claimed = Claimed()
    cursor = "0-0"
    for _ in range(100):  # bounded: at most 100 pages per stream per round
        try:
            reply = await redis.xautoclaim(
                stream, group, consumer, min_idle_ms, start_id=cursor, count=count
            )
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            await ensure_group(redis, stream, group)
            break
        # Redis 6.2 replies [cursor, entries]; 7.0 adds the ids it found deleted (and
        # already removed from the pending list) as a third element.
        cursor = text(reply[0])
        for entry_id, fields in reply[1]:
            if entry_id is None:
                # 6.2: deleted while pending, now in our pending list without its id; the
                # backlog read finds and acknowledges it.
                claimed.orphaned = True
                continue
            claimed.entries.append(Entry(stream, text(entry_id), fields or {}))
        if len(reply) > 2 and reply[2]:
            claimed.deleted += len(reply[2])
            log.warning("%d entries of %s were deleted while pending", len(reply[2]), stream)
        if cursor == "0-0" or len(claimed.entries) >= enough:
            break
    return claimed


async def delivery_counts(
    redis: Redis, group: str, consumer: str, entries: Sequence[Entry]
) -> dict[tuple[str, str], int]:
    """Delivery counts (XPENDING) of entries now pending for ``consumer``."""
    counts: dict[tuple[str, str], int] = {}
    by_stream: dict[str, list[str]] = {}
    for e in entries:
        by_stream.setdefault(e.stream, []).append(e.id)
    for stream, ids in by_stream.items():
        wanted = set(ids)
        low = min(ids, key=parse_id)
        high = max(ids, key=parse_id)
        for _ in range(1000):  # bounded paging over our pending list
            rows = await redis.xpending_range(
                stream,
                group,
                min=low,
                max=high,
                count=max(len(ids), 100),
                consumername=consumer,
            )
            for row in rows:
                entry_id = text(row["message_id"])
                if entry_id in wanted:
                    counts[(stream, entry_id)] = int(row["times_delivered"])
            if len(rows) < max(len(ids), 100) or len(counts) >= len(wanted):
                break
            low = next_id(text(rows[-1]["message_id"]))
    return counts


async def forget_idle_consumers(
    redis: Redis, stream: str, group: str, *, keep: str, idle_ms: int
) -> None:
    """Drop consumers other than ``keep`` with nothing pending, unseen for ``idle_ms``
    (every restart under a new name leaves one behind)."""
    try:
        consumers = await redis.xinfo_consumers(stream, group)
    except ResponseError:
        return
    for c in consumers:
        name = text(c["name"])
        if name != keep and int(c["pending"]) == 0 and int(c["idle"]) > idle_ms:
            await redis.xgroup_delconsumer(stream, group, name)
