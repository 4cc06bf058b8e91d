"""One connected socket as the hub sees it, whatever its transport.

A :class:`Client` owns its rooms' cursors (the last feed id delivered per event), the
entries buffered while a join reads its snapshot, its user rooms, its :class:`Outbox` and
its message budget. :meth:`Client.deliver` is the rule that makes replay, snapshots and
live frames meet without gaps or repeats: nothing at or before the cursor is sent twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from api.realtime.outbox import Outbox
from api.security import Principal
from engine.feed import FeedEntry, id_tuple

MESSAGES_PER_SECOND = 50.0
MESSAGE_BURST = 100.0
MAX_BUFFERED_WHILE_JOINING = 10_000


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
