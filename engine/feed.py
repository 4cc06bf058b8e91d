"""Reading the events' feed streams: snapshots, replay since an id, and live tailing.

The real-time hub (api/realtime/hub.py) builds rooms on top of this; it never sees a key
name. One :class:`FeedTailer` per process reads every stream some local client is
interested in with one blocking XREAD, so N watchers of an event cost one read, not N.
Each entry's wire frame is made once, by the :data:`FrameEncoder` the reader is given
(the real-time protocol's), and shared by every receiver; this module knows no wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from engine import keys
from engine.core import parse_inventory
from engine.models import EventStock, event_of_order
from engine.vocabulary import text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed stream entry, with its wire frame encoded once for every receiver."""

    event_id: str
    id: str
    name: str
    user: str | None
    category: str | None
    frame: bytes
    admission: str | None = None
    """A ``queue:admitted`` entry's admission token (the hub tells each socket each
    admission once)."""


FrameEncoder = Callable[[str, bytes, str], bytes]
"""An entry's wire frame from its kind, its stored JSON data and its stream id."""


def _entry(event_id: str, raw_id: Any, fields: dict[Any, Any], encode: FrameEncoder) -> FeedEntry:
    user = fields.get(b"user")
    entry_id = text(raw_id)
    name = text(fields.get(b"event", b""))
    data = fields.get(b"data", b"{}")
    category = admission = None
    if name == "ticket:stock-update":
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            category = str(msgspec.json.decode(data).get("categoriaId", ""))
    elif name == "queue:admitted":
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            admission = str(msgspec.json.decode(data).get("admisionToken") or "") or None
    return FeedEntry(
        event_id=event_id,
        id=entry_id,
        name=name,
        user=text(user) if user is not None else None,
        category=category,
        frame=encode(name, data, entry_id),
        admission=admission,
    )


def id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


async def snapshot(redis: Redis, event_id: str) -> tuple[EventStock | None, str]:
    """Current stock and a feed id it is at least as new as.

    On one Redis both are read in one MULTI, so the stock is exactly the state after that
    entry. A cluster pipeline has no MULTI: the id is read first, so the stock may already
    include later entries; those are delivered after the snapshot, in order, and the
    client's view converges on the next frames.
    """
    if isinstance(redis, Redis):
        pipe = redis.pipeline(transaction=True)
        pipe.hgetall(keys.inventory(event_id))
        pipe.xrevrange(keys.feed(event_id), count=1)
        inventory, last = await pipe.execute()
        last_id = text(last[0][0]) if last else "0-0"
    else:
        last_id = await latest_id(redis, event_id)
        inventory = await redis.hgetall(keys.inventory(event_id))
    return parse_inventory(event_id, inventory), last_id


async def latest_id(redis: Redis, event_id: str) -> str:
    last = await redis.xrevrange(keys.feed(event_id), count=1)
    return text(last[0][0]) if last else "0-0"


MAX_ID = (2**64 - 1, 2**64 - 1)


class Replay(NamedTuple):
    """What :func:`since` found."""

    exists: bool
    """The event is armed (its inventory is in Redis)."""
    entries: list[FeedEntry]
    """Entries after the id asked for, oldest first."""
    complete: bool
    """``entries`` is everything missed: False when the capped stream no longer holds the
    entry right after the id, when there were more than the limit, or when the id is
    ahead of the feed's last entry (it came from a feed since lost, e.g. a Redis reset)."""


async def since(
    redis: Redis, event_id: str, after_id: str, encode: FrameEncoder, limit: int = 10_000
) -> Replay:
    """The feed entries after ``after_id`` and whether the event exists, in one round
    trip (every key is in the event's slot)."""
    after = id_tuple(after_id)
    stream = keys.feed(event_id)
    pipe = redis.pipeline(transaction=False)
    pipe.hexists(keys.inventory(event_id), "state")
    pipe.xrange(stream, count=1)
    pipe.xrevrange(stream, count=1)
    if after < MAX_ID:  # "(" of the largest id is an error: nothing can follow it
        pipe.xrange(stream, min=f"({after[0]}-{after[1]}", count=limit)
    exists, first, last, *rest = await pipe.execute()
    raw: Any = rest[0] if rest else []
    newest = id_tuple(text(last[0][0])) if last else (0, 0)
    complete = (
        (not first or id_tuple(text(first[0][0])) <= after or after == (0, 0))
        and after <= newest
        and len(raw) < limit
    )
    entries = [_entry(event_id, i, f, encode) for i, f in raw] if exists else []
    return Replay(bool(exists), entries, complete)


async def recent_order_events(
    redis: Redis, user_ids: Sequence[str], created_from_ms: int
) -> dict[str, dict[str, int]]:
    """Per user, the events of their orders created since ``created_from_ms`` (the user's
    recent-orders set, which every hold adds to), and the events whose waitlists they
    joined (a ``waitlist:offer`` may come at any time): event id -> the earliest such
    order's creation (or join) time (ms, the API clock). One pipelined round trip."""
    if not user_ids:
        return {}
    pipe = redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.zrangebyscore(keys.user_orders(user_id), created_from_ms, "+inf", withscores=True)
        pipe.zrange(keys.user_waitlists(user_id), 0, -1, withscores=True)
    out: dict[str, dict[str, int]] = {}
    replies = await pipe.execute()
    for n, user_id in enumerate(user_ids):
        rows, waits = replies[2 * n], replies[2 * n + 1]
        events: dict[str, int] = {}
        for member, score in rows:
            event_id = event_of_order(text(member))
            if event_id is not None:
                created = int(score)
                events[event_id] = min(created, events.get(event_id, created))
        for member, score in waits:
            event_id, joined = text(member), int(score)
            events[event_id] = min(joined, events.get(event_id, joined))
        out[user_id] = events
    return out


Dispatch = Callable[[list[FeedEntry]], Awaitable[None] | None]


class FeedTailer:
    """Tails a changing set of feed streams with one blocking XREAD loop, at most
    ``max_streams`` of them (each one is an argument of every XREAD)."""

    def __init__(
        self,
        redis: Redis,
        dispatch: Dispatch,
        encode: FrameEncoder,
        block_ms: int = 250,
        linger_ms: float = 0,
        max_streams: int = 5000,
    ) -> None:
        self.redis = redis
        self.dispatch = dispatch
        self.encode = encode
        self.block_ms = block_ms
        self.linger_s = linger_ms / 1000
        self.max_streams = max_streams
        self.positions: dict[str, str] = {}  # event id -> last id read
        self.reads = 0
        """XREADs started so far: a stream followed when this was n is in every read
        after the n-th."""

    def is_full(self, event_id: str) -> bool:
        """Following ``event_id`` would pass ``max_streams``."""
        return event_id not in self.positions and len(self.positions) >= self.max_streams

    def follow(self, event_id: str, from_id: str) -> bool:
        """Start tailing an event's feed after ``from_id`` (no-op if already tailed);
        False, and nothing done, when that would pass ``max_streams``."""
        if self.is_full(event_id):
            return False
        self.positions.setdefault(event_id, from_id)
        return True

    def unfollow(self, event_id: str) -> None:
        self.positions.pop(event_id, None)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            if not self.positions:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.block_ms / 1000)
                continue
            try:
                if await self.read_once() and self.linger_s > 0:
                    # Let the next updates gather: one read then carries many (conflated
                    # per category by the hub) instead of one XREAD round trip each.
                    await asyncio.sleep(self.linger_s)
                backoff = 0.05
            except (RedisError, OSError) as e:
                log.warning("feed tailer lost Redis (%s); retrying in %.2fs", e, backoff)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 2.0)

    async def read_once(self) -> int:
        self.reads += 1
        streams = {keys.feed(e): p for e, p in self.positions.items()}
        if isinstance(self.redis, Redis):
            replies = [await self._xread(streams)]
        else:
            # One XREAD may only name keys of one slot on a cluster: one read per slot.
            by_slot: dict[int, dict[str, str]] = {}
            for stream, position in streams.items():
                by_slot.setdefault(key_slot(stream.encode()), {})[stream] = position
            replies = await asyncio.gather(*(self._xread(group) for group in by_slot.values()))
        delivered = 0
        for reply in replies:
            for stream, entries in reply or []:
                event_id = keys.event_of_feed(text(stream))
                if event_id is None or event_id not in self.positions or not entries:
                    continue
                batch = [_entry(event_id, i, f, self.encode) for i, f in entries]
                self.positions[event_id] = batch[-1].id
                delivered += len(batch)
                result = self.dispatch(batch)
                if result is not None:
                    await result
        return delivered

    async def _xread(self, streams: dict[str, str]) -> Any:
        streams_arg: Any = streams
        return await self.redis.xread(streams_arg, count=1000, block=self.block_ms)
