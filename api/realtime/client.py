"""One connected socket as the hub sees it, whatever its transport.

A :class:`Client` owns its rooms' cursors (the last feed id delivered per event), the
entries buffered while a join reads its snapshot, its user rooms, its :class:`Outbox` and
its message budget. :meth:`Client.deliver` is the rule that makes replay, snapshots and
live frames meet without gaps or repeats: nothing at or before the cursor is sent twice.
:class:`QueueTold` is the same for its buyer's admission queues: each admission once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from api.realtime.outbox import Outbox
from api.security import Principal
from engine.feed import FeedEntry, id_tuple

MESSAGES_PER_SECOND = 50.0
MESSAGE_BURST = 100.0
MAX_BUFFERED_WHILE_JOINING = 10_000


_order = itertools.count(1)


def mark() -> int:
    """A number larger than every earlier one: when a read of places started, or when the
    feed told a socket something (:class:`QueueTold`)."""
    return next(_order)


TOLD_ADMISSIONS = 8
"""Admission tokens a socket remembers per event (a buyer has one place: each new
admission needs the last one used, left or lost, and a new turn in the line)."""


@dataclass(slots=True)
class QueueTold:
    """What one socket was told of its buyer's place in one event's queue, so that it is
    told each admission once and never a state older than one it was told.

    Two paths tell it: the event's feed (``queue:admitted`` to the user's room and to the
    sockets that sent ``join:queue``, ``queue:sold-out`` to the latter) and the queue
    watch's read of the place (api/realtime/queue_watch.py), which says what the feed
    has not (yet) said. They race: a read can see an admission before its feed entry is
    delivered, a read's answer can be handled after a feed entry that is newer than it,
    and a user room that follows the event's feed again replays entries. Hence:

    * ``admissions``: the admission tokens told, by either path; none is told again
      (tokens are single-use and drawn afresh: a new admission always has a new one).
    * ``read_ms``: Redis's clock at the last read applied, while the socket follows the
      queue. A feed entry older than it (its id's milliseconds before it) was seen by
      that read: the read said it, or the place had moved on (the admission used, left
      or lost and a newer one read; a sell-out reopened). It is not told. Equal: told
      (the two may share a millisecond; a repeat is caught by ``admissions``).
    * ``seen``: :func:`mark` of the newest thing applied, a read (taken when it started)
      or a feed delivery. A read that started before it is stale for this socket and is
      skipped (the next read, a second later, says the place as it is then).

    A guard only ever holds back what the socket knows or what a read already found
    superseded, and the reads go on once a second: an admission is never lost.
    """

    admissions: list[str] = field(default_factory=list)
    sold_out: bool = False
    """Told ``queue:sold-out``, since the last read that found the buyer waiting."""
    position: tuple[object, ...] | None = None
    """The last ``queue:position`` told (figures only: told again only when they change)."""
    read_ms: int = 0
    seen: int = 0

    def admitted(self, token: str) -> bool:
        """Whether to tell admission ``token``: False if told before, else remembered."""
        if token in self.admissions:
            return False
        self.admissions.append(token)
        del self.admissions[:-TOLD_ADMISSIONS]
        return True

    def admitted_by_feed(self, token: str, entry_ms: int) -> bool:
        """A ``queue:admitted`` feed entry: whether to tell it."""
        if entry_ms < self.read_ms or not self.admitted(token):
            return False
        self.seen = mark()
        return True

    def sold_out_by_feed(self, entry_ms: int) -> bool:
        """A ``queue:sold-out`` feed entry: whether to tell it."""
        if self.sold_out or entry_ms < self.read_ms:
            return False
        self.sold_out, self.seen = True, mark()
        return True

    def read(self, started: int, read_ms: int) -> bool:
        """A read of the place that started at ``started`` (:func:`mark`), at Redis time
        ``read_ms``: False if this socket was told something newer meanwhile."""
        if started < self.seen:
            return False
        self.seen, self.read_ms = started, read_ms
        return True

    def unwatched(self) -> None:
        """The socket no longer follows the queue: no more reads; what it was told stays."""
        self.read_ms = 0


def conflate_key(entry: FeedEntry) -> Hashable | None:
    """Stock updates of one category replace each other in an outbox; nothing else does."""
    return None if entry.category is None else ("stock", entry.event_id, entry.category)


@dataclass(eq=False)
class Client:
    """One connected socket: its rooms, per-event cursors and outbox."""

    principal: Principal | None = None
    address: str | None = None
    """The client address it connected from (the per-address socket cap)."""
    outbox: Outbox = field(default_factory=Outbox)
    cursors: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    """Event id -> last feed position delivered; None while joining (buffering)."""
    buffered: dict[str, list[FeedEntry]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    queues: dict[str, QueueTold] = field(default_factory=dict)
    """Event id -> what this socket was told of its buyer's place in that event's queue."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: float = MESSAGE_BURST
    last_refill: float = field(default_factory=time.monotonic)

    def allow_message(self) -> bool:
        """Take one message from the token bucket (False: the client sends too fast)."""
        now = time.monotonic()
        self.tokens = min(
            MESSAGE_BURST, self.tokens + (now - self.last_refill) * MESSAGES_PER_SECOND
        )
        self.last_refill = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def told(self, event_id: str) -> QueueTold:
        told = self.queues.get(event_id)
        if told is None:
            told = self.queues[event_id] = QueueTold()
        return told

    def send_entry(self, entry: FeedEntry) -> None:
        self.outbox.put(entry.frame, conflate_key(entry))

    def deliver(self, entry: FeedEntry) -> None:
        """An event-room entry: buffered while joining, else sent once past the cursor."""
        if entry.event_id not in self.cursors:
            return
        cursor = self.cursors[entry.event_id]
        if cursor is None:
            pending = self.buffered.setdefault(entry.event_id, [])
            pending.append(entry)
            if len(pending) > MAX_BUFFERED_WHILE_JOINING:
                self.outbox.overflowed = True
                self.outbox.ready.set()
            return
        position = id_tuple(entry.id)
        if position > cursor:
            self.cursors[entry.event_id] = position
            self.send_entry(entry)
