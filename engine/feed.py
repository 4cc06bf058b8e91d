"""Reading the events' feed streams: snapshots, replay since an id, and live tailing.

The WebSocket hub (api/ws.py) builds rooms on top of this; it never sees a key name.
One :class:`FeedTailer` per process reads every stream some local client is interested in
with one blocking XREAD, so N watchers of an event cost one read, not N.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from engine import keys
from engine.core import _text, parse_inventory
from engine.models import EventStock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed stream entry, with its WebSocket frame encoded once for every receiver."""

    event_id: str
    id: str
    name: str
    data: bytes
    user: str | None
    category: str | None
    frame: bytes


def _entry(event_id: str, raw_id: Any, fields: dict[Any, Any]) -> FeedEntry:
    user = fields.get(b"user")
    entry_id = _text(raw_id)
    name = _text(fields.get(b"event", b""))
    data = fields.get(b"data", b"{}")
    category = None
    if name == "ticket:stock-update":
        with contextlib.suppress(msgspec.DecodeError, AttributeError):
            category = str(msgspec.json.decode(data).get("categoriaId", ""))
    # {"event", "data", "id"}, with the stored JSON data embedded as-is.
    frame = b'{"event":%s,"data":%s,"id":"%s"}' % (
        msgspec.json.encode(name),
        data,
        entry_id.encode(),
    )
    return FeedEntry(
        event_id=event_id,
        id=entry_id,
        name=name,
        data=data,
        user=_text(user) if user is not None else None,
        category=category,
        frame=frame,
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
        last_id = _text(last[0][0]) if last else "0-0"
    else:
        last_id = await latest_id(redis, event_id)
        inventory = await redis.hgetall(keys.inventory(event_id))
    return parse_inventory(event_id, inventory), last_id


async def latest_id(redis: Redis, event_id: str) -> str:
    last = await redis.xrevrange(keys.feed(event_id), count=1)
    return _text(last[0][0]) if last else "0-0"


async def since(
    redis: Redis, event_id: str, after_id: str, limit: int = 10_000
) -> tuple[list[FeedEntry], bool]:
    """Entries after ``after_id``, oldest first, and whether that is everything missed
    (False when the capped stream no longer holds the entry right after ``after_id``)."""
    first = await redis.xrange(keys.feed(event_id), count=1)
    complete = (
        not first
        or id_tuple(_text(first[0][0])) <= id_tuple(after_id)
        or after_id
        in (
            "0",
            "0-0",
        )
    )
    raw: Any = await redis.xrange(keys.feed(event_id), min=f"({after_id}", count=limit)
    return [_entry(event_id, i, f) for i, f in raw], complete and len(raw) < limit


Dispatch = Callable[[list[FeedEntry]], Awaitable[None] | None]


class FeedTailer:
    """Tails a changing set of feed streams with one blocking XREAD loop."""

    def __init__(
        self, redis: Redis, dispatch: Dispatch, block_ms: int = 250, linger_ms: float = 0
    ) -> None:
        self.redis = redis
        self.dispatch = dispatch
        self.block_ms = block_ms
        self.linger_s = linger_ms / 1000
        self.positions: dict[str, str] = {}  # event id -> last id read
        self.errors = 0
        self.reads = 0

    def follow(self, event_id: str, from_id: str) -> None:
        """Start tailing an event's feed after ``from_id`` (no-op if already tailed)."""
        self.positions.setdefault(event_id, from_id)

    def unfollow(self, event_id: str) -> None:
        self.positions.pop(event_id, None)

    def following(self) -> Iterable[str]:
        return list(self.positions)

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
                self.errors += 1
                log.warning("feed tailer lost Redis (%s); retrying in %.2fs", e, backoff)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 2.0)

    async def read_once(self) -> int:
        streams = {keys.feed(e): p for e, p in self.positions.items()}
        if isinstance(self.redis, Redis):
            replies = [await self._xread(streams)]
        else:
            # One XREAD may only name keys of one slot on a cluster: one read per slot.
            by_slot: dict[int, dict[str, str]] = {}
            for stream, position in streams.items():
                by_slot.setdefault(key_slot(stream.encode()), {})[stream] = position
            replies = await asyncio.gather(*(self._xread(group) for group in by_slot.values()))
        self.reads += 1
        delivered = 0
        for reply in replies:
            for stream, entries in reply or []:
                event_id = keys.event_of_feed(_text(stream))
                if event_id is None or event_id not in self.positions or not entries:
                    continue
                batch = [_entry(event_id, i, f) for i, f in entries]
                self.positions[event_id] = batch[-1].id
                delivered += len(batch)
                result = self.dispatch(batch)
                if result is not None:
                    await result
        return delivered

    async def _xread(self, streams: dict[str, str]) -> Any:
        streams_arg: Any = streams
        return await self.redis.xread(streams_arg, count=1000, block=self.block_ms)
