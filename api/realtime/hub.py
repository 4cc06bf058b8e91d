"""The process's rooms: who watches which event and which user, and the rules of joining.

One :class:`Hub` per process. Its :class:`~engine.feed.FeedTailer` reads, with one blocking
XREAD, the feed of every event a local client watches (and, while someone watches a user
room, every armed event's feed for ``order:status-change``); :mod:`api.realtime.fanout`
hands each read to the sockets. Fan-out happens per process, so any number of API
processes need nothing between them. The hub answers typed client messages
(:data:`~api.realtime.protocol.ClientMessage`) with typed frames; the transports
(:mod:`api.realtime.ws`, :mod:`api.realtime.socketio`) only move bytes.

Litestar's ChannelsPlugin was evaluated: its stream backend replays "the last N", not
"since an id"; it puts a TTL on stream keys and reads all channels in one XREAD that is not
cluster-safe, and its backlog drops per subscriber rather than conflating per category.
Replay-since-id, snapshots and conflation are the heart of this package, so the thin
reading loop is ours too (engine/feed.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, assert_never

from litestar.security.jwt import JWTAuth, Token
from redis.asyncio import Redis

from api.realtime import protocol
from api.realtime.client import Client
from api.realtime.fanout import dispatch
from api.realtime.protocol import ClientError, ClientMessage
from api.security import Principal, verify_token
from engine import feed
from engine.core import Engine
from engine.feed import FeedEntry, FeedTailer, id_tuple
from engine.vocabulary import Role

log = logging.getLogger(__name__)

MAX_ROOMS_PER_SOCKET = 100
USER_FEED_REFRESH_S = 1.0
# After a read that delivered something, the tailer waits this long before reading again,
# so an on-sale's stream of updates arrives in batches (at most this much later).
FEED_LINGER_MS = 10


class Hub:
    """Rooms of this process and the tailer that feeds them."""

    def __init__(
        self,
        redis: Redis,
        engine: Engine,
        jwt_auth: JWTAuth[Principal, Token],
        store: Any,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.jwt_auth = jwt_auth
        self.store = store
        self.rooms: dict[str, set[Client]] = {}
        self.user_rooms: dict[str, set[Client]] = {}
        self.clients: set[Client] = set()
        self.tailer = FeedTailer(
            redis, self.dispatch, protocol.feed_frame, linger_ms=FEED_LINGER_MS
        )
        self._user_feed_events: set[str] = set()

    async def authenticate(self, token: str) -> Principal | None:
        """The token's principal if it is valid and its user still exists."""
        return await verify_token(self.jwt_auth, token, self.store)

    async def dispatch(self, entries: list[FeedEntry]) -> None:
        """The tailer's callback: one read's entries to this process's sockets."""
        await dispatch(self.rooms, self.user_rooms, entries)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.tailer.run(stop), self._follow_user_feeds(stop))

    async def _follow_user_feeds(self, stop: asyncio.Event) -> None:
        """While a user room is open here, tail every armed event for status changes."""
        while not stop.is_set():
            try:
                wanted = set(await self.engine.event_ids()) if self.user_rooms else set()
                for event_id in wanted - self._user_feed_events:
                    self.tailer.follow(event_id, await feed.latest_id(self.redis, event_id))
                for event_id in self._user_feed_events - wanted:
                    if event_id not in self.rooms:
                        self.tailer.unfollow(event_id)
                self._user_feed_events = wanted
            except Exception as e:
                log.warning("user feed refresh failed: %s", e)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), USER_FEED_REFRESH_S)

    # -- rooms ---------------------------------------------------------------------------

    async def join_event(
        self, client: Client, event_id: str, since: str | None
    ) -> protocol.EventRoomJoined:
        """Into an event's room: what was missed since ``since`` (when the capped feed
        still holds it all), else a stock snapshot; then live frames past the cursor."""
        if event_id not in client.cursors and len(client.cursors) >= MAX_ROOMS_PER_SOCKET:
            raise ClientError("too_many_rooms", f"at most {MAX_ROOMS_PER_SOCKET} rooms per socket")
        # Register first (buffering), then read: nothing between the two is lost.
        client.cursors[event_id] = None
        client.buffered[event_id] = []
        self.rooms.setdefault(event_id, set()).add(client)
        if event_id not in self.tailer.positions:
            self.tailer.follow(event_id, await feed.latest_id(self.redis, event_id))
        replayed, complete = 0, False
        if since is not None:
            entries, complete = await feed.since(self.redis, event_id, since, protocol.feed_frame)
            if complete:
                for entry in entries:
                    if entry.name in protocol.ROOM_EVENTS:
                        client.send_entry(entry)
                        replayed += 1
                cursor_id = entries[-1].id if entries else since
        if since is None or not complete:
            stock, cursor_id = await feed.snapshot(self.redis, event_id)
            if stock is None:
                self.leave_event(client, event_id)
                raise ClientError("event_not_found", f"event {event_id} not found")
            for c in stock.categories:
                snapshot = protocol.StockUpdate(
                    event_id=event_id, category_id=c.id, available=c.available
                )
                client.outbox.put(
                    protocol.encode(protocol.StockSnapshot(data=snapshot, id=cursor_id)),
                    ("stock", event_id, c.id),
                )
        client.cursors[event_id] = id_tuple(cursor_id)
        for entry in client.buffered.pop(event_id, []):
            client.deliver(entry)
        return protocol.EventRoomJoined(
            event_id=event_id,
            id=cursor_id,
            replayed=replayed,
            snapshot=since is None or not complete,
        )

    def leave_event(self, client: Client, event_id: str) -> None:
        client.cursors.pop(event_id, None)
        client.buffered.pop(event_id, None)
        room = self.rooms.get(event_id)
        if room is not None:
            room.discard(client)
            if not room:
                del self.rooms[event_id]
                if event_id not in self._user_feed_events:
                    self.tailer.unfollow(event_id)

    def join_user(self, client: Client, user_id: str) -> None:
        """Into a user's room: the token's own user, or any user for an admin."""
        who = client.principal
        if who is None:
            raise ClientError("unauthorized", "join:user needs a valid token (auth or ?token=)")
        if who.id != user_id and not who.is_admin:
            raise ClientError("forbidden", "you may only join your own user room")
        client.users.add(user_id)
        self.user_rooms.setdefault(user_id, set()).add(client)

    def leave_user(self, client: Client, user_id: str) -> None:
        client.users.discard(user_id)
        room = self.user_rooms.get(user_id)
        if room is not None:
            room.discard(client)
            if not room:
                del self.user_rooms[user_id]

    def remove(self, client: Client) -> None:
        """A socket is gone: out of every room, its resources freed."""
        for event_id in list(client.cursors):
            self.leave_event(client, event_id)
        for user_id in list(client.users):
            self.leave_user(client, user_id)
        self.clients.discard(client)
        client.closed.set()

    def counts(self) -> dict[str, int]:
        return {
            "clients": len(self.clients),
            "eventRooms": len(self.rooms),
            "userRooms": len(self.user_rooms),
            "tailedStreams": len(self.tailer.positions),
            "queuedFrames": sum(len(c.outbox.frames) for c in self.clients),
            "tasks": len(asyncio.all_tasks()),
        }

    # -- client messages -----------------------------------------------------------------

    async def handle(self, client: Client, message: ClientMessage) -> None:
        """One client message; the answer goes on the client's outbox. A refusal is a
        :class:`~api.realtime.protocol.ClientError` for the transport to answer."""
        reply: protocol.ServerFrame
        match message:
            case protocol.Auth(data=credentials):
                principal = await self.authenticate(credentials.token)
                if principal is None:
                    raise ClientError("unauthorized", "invalid token")
                client.principal = principal
                identity = protocol.Identity(user_id=principal.id, role=Role(principal.role))
                reply = protocol.Authenticated(data=identity)
            case protocol.JoinEvent(data=join):
                ack = await self.join_event(client, join.event_id, join.since)
                reply = protocol.Joined(data=ack)
            case protocol.LeaveEvent(data=ref):
                self.leave_event(client, ref.event_id)
                reply = protocol.Left(data=protocol.EventRoomLeft(event_id=ref.event_id))
            case protocol.JoinUser(data=user):
                self.join_user(client, user.user_id)
                reply = protocol.Joined(data=protocol.UserRoomJoined(user_id=user.user_id))
            case protocol.LeaveUser(data=user):
                self.leave_user(client, user.user_id)
                reply = protocol.Left(data=protocol.UserRoomLeft(user_id=user.user_id))
            case _:
                assert_never(message)
        client.outbox.put(protocol.encode(reply))
