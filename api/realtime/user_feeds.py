"""The feeds a process tails for its open user rooms: the events in which those users have
an order that may still change, found by one pipelined read per second of their
recent-orders sets (:func:`engine.feed.recent_order_events`). :class:`UserFeeds` is the
:class:`~api.realtime.hub.Hub`'s; the hub tells it when a user room opens or closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from api.realtime.client import Client
from engine import feed
from engine.feed import FeedTailer

log = logging.getLogger(__name__)

USER_FEED_REFRESH_S = 1.0
# A user room follows the events of the user's orders created this long before now at most:
# an order changes only while RESERVED, i.e. within its hold lifetime (plus the expiry's lag).
USER_FEED_SLACK_MS = 120_000
# Where a newly found event's feed is read from, before the order's creation time: that
# time is the API host's clock, the feed ids the Redis server's.
CLOCK_MARGIN_MS = 1_000


class UserFeeds:
    """Which feeds the open user rooms need; ``watched(event_id)`` says whether an event
    room or the queue watch still needs a feed these rooms no longer do."""

    def __init__(
        self,
        redis: Redis,
        tailer: FeedTailer,
        user_rooms: dict[str, set[Client]],
        hold_ttl_ms: int,
        watched: Callable[[str], bool],
    ) -> None:
        self.redis = redis
        self.tailer = tailer
        self.user_rooms = user_rooms  # the hub's, shared
        self.hold_ttl_ms = hold_ttl_ms
        self._watched = watched
        self.events: set[str] = set()  # the feeds followed for user rooms
        self._joined_ms: dict[str, int] = {}  # user room -> when it opened (API clock)
        self._changed = asyncio.Event()

    def opened(self, user_id: str) -> None:
        """A user room opened here (its first socket joined)."""
        self._joined_ms[user_id] = int(time.time() * 1000)
        self._changed.set()

    def closed(self, user_id: str) -> None:
        """A user room closed here (its last socket left)."""
        self._joined_ms.pop(user_id, None)
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """While user rooms are open here, tail the events those users hold orders in.

        Every second (and at once when a user room opens or closes) one pipelined read of
        the open rooms' users' recent-orders sets (which every hold adds to) says which
        events they have orders in that may still change (created within the hold
        lifetime). An event found for an order created after its user's room opened is
        read from just before that order's creation, so its first status change
        (``RESERVED``) is not missed; one found for older orders only is read from now
        (a room gets what happens after it opened, not a replay). Cost: one round trip
        per second for all the user rooms, and the streams of the events they buy in;
        nothing for the events nobody here buys in.
        """
        while not stop.is_set():
            self._changed.clear()
            try:
                await self.refresh()
            except Exception as e:
                log.warning("user feed refresh failed: %s", e)
            changed = asyncio.ensure_future(self._changed.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({changed, stopped}, timeout=USER_FEED_REFRESH_S)
            finally:
                changed.cancel()
                stopped.cancel()

    async def refresh(self) -> None:
        users = list(self.user_rooms)
        wanted: set[str] = set()
        # Just before the earliest order created since its user's room opened (ms);
        # events without one are read from now (their orders are older than the room).
        replay_from: dict[str, int] = {}
        if users:
            now = int(time.time() * 1000)
            window = self.hold_ttl_ms + USER_FEED_SLACK_MS
            found = await feed.recent_order_events(self.redis, users, now - window)
            for user_id, events in found.items():
                opened = self._joined_ms.get(user_id)
                if opened is None:  # the room closed during the read
                    continue
                for event_id, created in events.items():
                    wanted.add(event_id)
                    if created >= opened:
                        start = max(0, created - CLOCK_MARGIN_MS)
                        replay_from[event_id] = min(start, replay_from.get(event_id, start))
        followed: set[str] = set()
        for event_id in wanted:
            # Already tailed (for a room, or since an earlier refresh): kept as it is.
            if event_id not in self.tailer.positions:
                if event_id in replay_from:
                    position = f"{replay_from[event_id]}-0"
                else:
                    position = await feed.latest_id(self.redis, event_id)
                if not self.tailer.follow(event_id, position):
                    log.warning(
                        "not following %s for user rooms: %d streams tailed (WS_MAX_STREAMS)",
                        event_id,
                        len(self.tailer.positions),
                    )
                    continue
            followed.add(event_id)
        for event_id in self.events - followed:
            if not self._watched(event_id):
                self.tailer.unfollow(event_id)
        self.events = followed
