"""Refusing a hold for a sold-out category from what this process already knows.

During an on-sale most hold attempts come after the category sold out, and each used to
cost a hold script's round trip plus a stock read to name the category. This gate keeps,
per event this process has seen holds for, every category's available stock as the
event's feed reports it (``ticket:stock-update``, read by a :class:`~engine.feed.FeedTailer`
of its own: one blocking XREAD for all such events), and answers a hold that cannot fit
with the same 409 ``sold_out`` problem the script's refusal gives, without Redis.

It never decides a hold: a hold it lets through is decided by the script, as before, so it
cannot oversell. It refuses only what the script would refuse with ``sold_out``, and only
when it is sure it knows enough:

* the event's stock was read (one MULTI: the inventory and the feed's last id) and the
  tailer has since started a read past that id, so every later change reaches the gate
  within the tailer's lag (milliseconds): a ticket released by a cancel or an expiry makes
  the next hold go to the script again;
* nothing the script checks before the stock would answer otherwise: the event is
  ``open``, has not started, has no admission queue and no per-buyer cap, the order is
  within the per-order limit, and every category asked for is known;
* one Redis, not a cluster (the read below is one MULTI);
* the request has no ``Admission-Token``, and its ``Idempotency-Key`` if any was never
  used: a replay returns the earlier order, which only Redis knows, so a keyed hold the
  gate would refuse first reads the key's two records in one round trip
  (``Engine.key_in_use``) and goes to the script when either exists.

Any feed entry other than stock and order updates (the event changed, or one of its
categories was created, renamed, repriced, resized or removed: ``event:update``; a queue
opened; a waitlist offer), and a stock of 0 published without an order change (a category
deleted), drops what the gate knows of the event; the next hold reads it again. So a new
total is never refused from the stock before it, a removed category is the script's 404,
and a renamed one is named by its new name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine import keys
from engine.core import parse_inventory
from engine.feed import FeedEntry, FeedTailer, id_tuple
from engine.vocabulary import text

log = logging.getLogger(__name__)

SAFE = frozenset({"ticket:stock-update", "ticket:almost-sold-out", "order:status-change"})
"""Feed entries that change nothing the gate relies on but stock (the first)."""
MAX_EVENTS = 1000
STARTS_MARGIN_MS = 1000
BLOCK_MS = 250
"""No refusal this close to the event's start (the script's clock decides it)."""


@dataclass(slots=True)
class _Known:
    after: tuple[int, int]
    """The feed id the stock was read at: older entries are ignored."""
    ready_after: int
    """The tailer's read count when the event was followed: ready once it is passed."""
    state: str
    starts_ms: int | None
    max_per_order: int
    gated: bool
    """Nothing but stock decides (no queue, no per-buyer cap)."""
    available: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Short:
    """A category that cannot fit the hold."""

    category_id: str
    name: str
    available: int


class StockGate:
    def __init__(self, redis: Redis, max_events: int = MAX_EVENTS) -> None:
        self.redis = redis
        # Its own tailer, not the hub's: the hub starts each stream where its rooms need
        # it (a user room replays from just before an order), and a stream the gate had
        # started later would make the hub skip what it needs (test_socketio).
        self.tailer = FeedTailer(redis, self._apply, _data_only, block_ms=BLOCK_MS)
        self.max_events = max_events
        self.known: dict[str, _Known] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}
        self.refused = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self.tailer.run(stop)

    def _apply(self, entries: list[FeedEntry]) -> None:
        try:
            self.observe(entries)
        except Exception:  # what the gate knows is dropped, never wrong
            log.exception("stock gate: a feed read could not be applied")
            for event_id in list(self.known):
                self.forget(event_id)

    # -- what a hold asks ---------------------------------------------------------------

    def check(self, event_id: str, tickets: Sequence[tuple[str, int]]) -> Short | None:
        """The first category the hold cannot fit, when the gate is sure the script would
        refuse it as sold out; else None (the script decides). Starts following the
        event the first time it is asked about."""
        k = self.known.get(event_id)
        if k is None:
            self.watch(event_id)
            return None
        if k.ready_after >= self.tailer.reads or not k.gated or k.state != "open":
            return None
        if k.starts_ms is not None and time.time() * 1000 >= k.starts_ms - STARTS_MARGIN_MS:
            return None
        count = 0
        short: Short | None = None
        for category_id, quantity in tickets:
            if quantity < 1:
                return None
            count += quantity
            available = k.available.get(category_id)
            if available is None:
                return None
            if short is None and available < quantity:
                short = Short(category_id, k.names.get(category_id, category_id), available)
        if k.max_per_order > 0 and count > k.max_per_order:
            return None  # the script refuses the order's size first
        if short is not None:
            self.refused += 1
        return short

    def category_name(self, event_id: str, category_id: str) -> str | None:
        """The name of a category of an event the gate follows (None when it does not):
        what a refusal by the script names, without reading the stock again."""
        k = self.known.get(event_id)
        return k.names.get(category_id) if k is not None else None

    def watch(self, event_id: str) -> None:
        """Follow an event's stock (in the background; a no-op when already done)."""
        if event_id in self.known or event_id in self._reading:
            return
        if not isinstance(self.redis, Redis):
            return  # a cluster: no MULTI across the reads below; the script decides
        if len(self.known) + len(self._reading) >= self.max_events:
            return
        if self.tailer.is_full(event_id):
            return
        task = asyncio.get_running_loop().create_task(self._read(event_id))
        self._reading[event_id] = task

    async def _read(self, event_id: str) -> None:
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(keys.inventory(event_id))
            pipe.xrevrange(keys.feed(event_id), count=1)
            pipe.exists(keys.queue_keys(event_id).queue)
            inventory, last, queued = await pipe.execute()
        except (RedisError, OSError) as e:
            log.debug("stock gate: reading %s failed: %s", event_id, e)
            return
        finally:
            self._reading.pop(event_id, None)
        stock = parse_inventory(event_id, inventory)
        if stock is None:
            return
        last_id = text(last[0][0]) if last else "0-0"
        if not self.tailer.follow(event_id, last_id):
            return
        starts = inventory.get(b"date") or inventory.get("date")
        with contextlib.suppress(ValueError, TypeError):
            starts = int(float(text(starts))) if starts else None
        k = _Known(
            after=id_tuple(last_id),
            ready_after=self.tailer.reads,
            state=stock.state,
            starts_ms=starts if isinstance(starts, int) else None,
            max_per_order=stock.max_per_order,
            gated=not queued and not stock.max_per_buyer,
        )
        for c in stock.categories:
            k.available[c.id] = c.available
            k.names[c.id] = c.name
        self.known[event_id] = k

    # -- what the feed tells --------------------------------------------------------------

    def observe(self, entries: list[FeedEntry]) -> None:
        # A category deleted by its organizer is published as stock 0 with no order
        # change beside it, then an event:update (lua/adjust_category): the script would
        # answer 404, not sold_out, so either makes the gate forget the event.
        ordered = {e.event_id for e in entries if e.name == "order:status-change"}
        for entry in entries:
            k = self.known.get(entry.event_id)
            if k is None or id_tuple(entry.id) <= k.after:
                continue
            if entry.name == "ticket:stock-update" and entry.category in k.available:
                available = _new_stock(entry)
                if available == 0 and entry.event_id not in ordered:
                    available = None
                if available is not None:
                    k.available[entry.category] = available
                    continue
            if entry.name not in SAFE or entry.name == "ticket:stock-update":
                # Something else changed (or a stock entry the gate cannot read): forget
                # the event; the next hold reads it again.
                self.forget(entry.event_id)

    def forget(self, event_id: str) -> None:
        self.known.pop(event_id, None)
        self.tailer.unfollow(event_id)


def _data_only(name: str, data: bytes, entry_id: str) -> bytes:
    """The tailer's frame encoder: the entry's stored JSON, as it is."""
    return data


def _new_stock(entry: FeedEntry) -> int | None:
    """``nuevoStock`` of a stock entry."""
    try:
        value = msgspec.json.decode(entry.frame).get("nuevoStock")
    except (msgspec.DecodeError, AttributeError):
        return None
    return value if isinstance(value, int) else None
