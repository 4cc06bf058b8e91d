"""What the store does not hold yet: the orders of the entries the writer group has not
acknowledged (:func:`unpersisted_orders`), for readers that overlay them on the store's
rows (read-your-writes for admin and organizer views).

An order version reaches the store before its entry is acknowledged, so at any moment
every version missing from the store is in an unacknowledged entry: a pending one
(delivered, not yet acknowledged) or an undelivered one (after the group's
last-delivered id). Read this *before* the store: a version acknowledged in between is
then in both, never in neither.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import keys
from engine.models import Order
from engine.vocabulary import text
from persistence.store import latest_versions
from persistence.writer.dead_letters import triage
from persistence.writer.streams import Entry, next_id

DEFAULT_CAP = 10_000  # unacknowledged entries read per log, at most


class BacklogTooLarge(Exception):
    """A log has more unacknowledged entries than a reader may overlay: the store is that
    far behind, and what it holds plus ``cap`` entries would not be every order. Readers
    answer "retry shortly" rather than an incomplete list (the writer catches up)."""

    def __init__(self, stream: str, behind: int, cap: int) -> None:
        super().__init__(f"{stream}: at least {behind} entries not stored yet (over {cap})")
        self.behind = behind  # a lower bound: counting stops past the cap


async def unpersisted_orders(
    redis: Redis,
    event_ids: Iterable[str],
    *,
    group: str = keys.WRITER_GROUP,
    cap: int = DEFAULT_CAP,
    strict: bool = False,
) -> list[Order]:
    """The orders of ``event_ids`` whose latest logged version may not be stored yet:
    one copy per order (the one that supersedes the others), from the unacknowledged
    entries of each log. Undecodable entries are skipped (they are the writer's poison).
    A log with no writer group yet counts as wholly undelivered. At most ``cap`` entries
    per log are read: the pending ones, then the newest undelivered ones; with
    ``strict``, a log with more than ``cap`` unacknowledged entries raises
    :class:`BacklogTooLarge` instead (for lists that must not silently miss orders)."""
    entries: list[Entry] = []
    for event_id in event_ids:
        entries += await _unacknowledged(redis, keys.order_log(event_id), group, cap, strict)
    decoded, _ = triage(entries)
    return latest_versions(order for _, order in decoded)


async def _unacknowledged(
    redis: Redis, stream: str, group: str, cap: int, strict: bool
) -> list[Entry]:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream
        return []
    info = next((g for g in groups if text(g["name"]) == group), None)
    pending = int(info["pending"]) if info is not None else 0
    if strict and pending > cap:
        raise BacklogTooLarge(stream, pending, cap)
    out: list[Entry] = []
    if pending:
        rows = await redis.xpending_range(stream, group, min="-", max="+", count=cap)
        if rows:
            pipe = redis.pipeline(transaction=False)
            for row in rows:
                entry_id = text(row["message_id"])
                pipe.xrange(stream, min=entry_id, max=entry_id, count=1)
            for found in await pipe.execute():
                out += [Entry(stream, text(i), fields or {}) for i, fields in found or []]
    start = next_id(text(info["last-delivered-id"])) if info is not None else "-"
    room = max(0, cap - len(out))
    if strict:  # every undelivered entry, oldest first: one more than room is too many
        ahead = await redis.xrange(stream, min=start, max="+", count=room + 1) or []
        if len(ahead) > room:
            raise BacklogTooLarge(stream, len(out) + len(ahead), cap)
        out += [Entry(stream, text(i), fields or {}) for i, fields in ahead]
    elif room:
        newest = await redis.xrevrange(stream, max="+", min=start, count=room) or []
        out += [Entry(stream, text(i), fields or {}) for i, fields in reversed(newest)]
    return out
