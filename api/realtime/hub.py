"""The process's rooms: who watches which event and which user, and the rules of joining.

One :class:`Hub` per process. Its :class:`~engine.feed.FeedTailer` reads, with one blocking
XREAD, the feed of every event a local client watches, and of every event in which a user
whose room is open here has an order that may still change
(:class:`~api.realtime.user_feeds.UserFeeds`);
:mod:`api.realtime.fanout` hands each read to the sockets. What a process reads grows with
what its sockets watch, never with the number of events; :class:`Limits` caps the sockets
per user and per client address and the streams tailed. Fan-out happens per process, so
any number of API processes need nothing between them. The hub answers typed client messages
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
import logging
from dataclasses import dataclass
from typing import Any, assert_never

from litestar.security.jwt import JWTAuth, Token
from redis.asyncio import Redis

from api.realtime import protocol
from api.realtime.client import Client
from api.realtime.fanout import dispatch
from api.realtime.protocol import ClientError, ClientMessage
from api.realtime.queue_watch import QueueWatch
from api.realtime.user_feeds import UserFeeds
from api.security import Principal, verify_token
from api.settings import Settings
from engine import feed
from engine.core import Engine
from engine.feed import FeedEntry, FeedTailer, id_tuple
from engine.queue import QueueEngine
from engine.vocabulary import Role

log = logging.getLogger(__name__)

MAX_ROOMS_PER_SOCKET = 100
# After a read that delivered something, the tailer waits this long before reading again,
# so an on-sale's stream of updates arrives in batches (at most this much later).
FEED_LINGER_MS = 10


@dataclass(frozen=True)
class Limits:
    """What one process serves at most (``WS_MAX_*`` settings; 0 is no limit)."""

    per_user: int = 20
    """Sockets authenticated as one user."""
    per_address: int = 200
    """Sockets from one client address."""
    streams: int = 5000
    """Feed streams the tailer reads (events watched, by rooms or user rooms)."""
    hold_ttl_ms: int = 600_000
    """The hold lifetime: how long an order may still change."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            per_user=settings.ws_max_per_user,
            per_address=settings.ws_max_per_address,
            streams=settings.ws_max_streams,
            hold_ttl_ms=settings.hold_ttl_ms,
        )


def _full(count: int, cap: int) -> bool:
    return cap > 0 and count >= cap


def _too_many_streams(cap: int) -> ClientError:
    return ClientError(
        "too_many_streams", f"this server follows {cap} events already; try again later"
    )


class Hub:
    """Rooms of this process and the tailer that feeds them."""

    def __init__(
        self,
        redis: Redis,
        engine: Engine,
        jwt_auth: JWTAuth[Principal, Token],
        store: Any,
        limits: Limits | None = None,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.jwt_auth = jwt_auth
        self.store = store
        self.limits = limits or Limits()
        self.rooms: dict[str, set[Client]] = {}
        self.user_rooms: dict[str, set[Client]] = {}
        self.clients: set[Client] = set()
        self.by_user: dict[str, set[Client]] = {}
        self.by_address: dict[str, set[Client]] = {}
        self.tailer = FeedTailer(
            redis,
            self.dispatch,
            protocol.feed_frame,
            linger_ms=FEED_LINGER_MS,
            max_streams=self.limits.streams or 2**31,
        )
        self.queue_watch = QueueWatch(QueueEngine(engine))
        self.user_feeds = UserFeeds(
            redis, self.tailer, self.user_rooms, self.limits.hold_ttl_ms, self._watched
        )

    async def authenticate(self, token: str) -> Principal | None:
        """The token's principal if it is valid and its user still exists."""
        return await verify_token(self.jwt_auth, token, self.store)

    # -- sockets -------------------------------------------------------------------------

    def connect(self, client: Client, address: str | None) -> None:
        """A new socket from ``address``; :class:`ClientError` (close) past the
        per-address cap."""
        key = address or "unknown"
        peers = self.by_address.get(key, set())
        if _full(len(peers), self.limits.per_address):
            raise ClientError(
                "too_many_sockets",
                f"at most {self.limits.per_address} sockets per client address",
                close=True,
            )
        client.address = key
        self.by_address.setdefault(key, set()).add(client)
        self.clients.add(client)

    def identify(self, client: Client, principal: Principal) -> None:
        """``client`` is now ``principal``'s socket; :class:`ClientError` (close) past
        the per-user cap."""
        current = client.principal
        if current is not None and current.id == principal.id:
            client.principal = principal
            return
        if _full(len(self.by_user.get(principal.id, ())), self.limits.per_user):
            raise ClientError(
                "too_many_user_sockets",
                f"at most {self.limits.per_user} sockets per user",
                close=True,
            )
        self._forget_user(client)
        client.principal = principal
        self.by_user.setdefault(principal.id, set()).add(client)

    async def sign_in(self, client: Client, token: str) -> bool:
        """A socket's handshake token (``?token=``, Socket.IO ``auth``): False if it is
        invalid; :class:`ClientError` (close) past the per-user cap."""
        principal = await self.authenticate(token)
        if principal is None:
            return False
        self.identify(client, principal)
        return True

    def _forget_user(self, client: Client) -> None:
        if client.principal is None:
            return
        peers = self.by_user.get(client.principal.id)
        if peers is not None:
            peers.discard(client)
            if not peers:
                del self.by_user[client.principal.id]

    async def dispatch(self, entries: list[FeedEntry]) -> None:
        """The tailer's callback: one read's entries to this process's sockets."""
        await dispatch(self.rooms, self.user_rooms, entries)
        if self.queue_watch.watchers:
            self.queue_watch.route(entries)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(
            self.tailer.run(stop), self.user_feeds.run(stop), self.queue_watch.run(stop)
        )

    def _watched(self, event_id: str) -> bool:
        """An event room or the queue watch needs the event's feed."""
        return event_id in self.rooms or event_id in self.queue_watch.watchers

    # -- rooms ---------------------------------------------------------------------------

    async def join_event(
        self, client: Client, event_id: str, since: str | None
    ) -> protocol.EventRoomJoined:
        """Into an event's room: what was missed since ``since`` (when the capped feed
        still holds it all), else a stock snapshot; then live frames past the cursor."""
        if event_id not in client.cursors and len(client.cursors) >= MAX_ROOMS_PER_SOCKET:
            raise ClientError("too_many_rooms", f"at most {MAX_ROOMS_PER_SOCKET} rooms per socket")
        if self.tailer.is_full(event_id):
            raise _too_many_streams(self.tailer.max_streams)
        # Register first (buffering), then read: nothing between the two is lost.
        client.cursors[event_id] = None
        client.buffered[event_id] = []
        self.rooms.setdefault(event_id, set()).add(client)
        try:
            if event_id not in self.tailer.positions:
                latest = await feed.latest_id(self.redis, event_id)
                if not self.tailer.follow(event_id, latest):  # filled up meanwhile
                    raise _too_many_streams(self.tailer.max_streams)
            return await self._catch_up(client, event_id, since)
        except BaseException:
            # Not found, or Redis failed: nothing of the join stays (nor its stream).
            self.leave_event(client, event_id)
            raise

    async def _catch_up(
        self, client: Client, event_id: str, since: str | None
    ) -> protocol.EventRoomJoined:
        replayed, complete = 0, False
        if since is not None:
            replay = await feed.since(self.redis, event_id, since, protocol.feed_frame)
            if not replay.exists:
                raise ClientError("event_not_found", f"event {event_id} not found")
            complete = replay.complete
            if complete:
                for entry in replay.entries:
                    if entry.name in protocol.ROOM_EVENTS:
                        client.send_entry(entry)
                        replayed += 1
                cursor_id = replay.entries[-1].id if replay.entries else since
        if since is None or not complete:
            stock, cursor_id = await feed.snapshot(self.redis, event_id)
            if stock is None:
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
                if (
                    event_id not in self.user_feeds.events
                    and event_id not in self.queue_watch.watchers
                ):
                    self.tailer.unfollow(event_id)

    def join_user(self, client: Client, user_id: str) -> None:
        """Into a user's room: the token's own user, or any user for an admin."""
        who = client.principal
        if who is None:
            raise ClientError("unauthorized", "join:user needs a valid token (auth or ?token=)")
        if who.id != user_id and not who.is_admin:
            raise ClientError("forbidden", "you may only join your own user room")
        client.users.add(user_id)
        if user_id not in self.user_rooms:
            self.user_feeds.opened(user_id)
        self.user_rooms.setdefault(user_id, set()).add(client)

    def leave_user(self, client: Client, user_id: str) -> None:
        client.users.discard(user_id)
        room = self.user_rooms.get(user_id)
        if room is not None:
            room.discard(client)
            if not room:
                del self.user_rooms[user_id]
                self.user_feeds.closed(user_id)

    async def join_queue(self, client: Client, event_id: str) -> None:
        """The socket follows its user's place in the event's queue (and is their
        heartbeat); the event's feed is tailed for ``queue:admitted`` / ``sold-out``."""
        who = client.principal
        if who is None:
            raise ClientError("unauthorized", "join:queue needs a valid token (auth or ?token=)")
        if event_id not in self.tailer.positions:
            if self.tailer.is_full(event_id):
                raise _too_many_streams(self.tailer.max_streams)
            self.tailer.follow(event_id, await feed.latest_id(self.redis, event_id))
        try:
            await self.queue_watch.add(client, event_id, who.id)
        except BaseException:
            self._leave_queue(client, event_id)
            raise

    def _leave_queue(self, client: Client, event_id: str) -> None:
        self.queue_watch.remove(client, event_id)
        if (
            event_id not in self.queue_watch.watchers
            and event_id not in self.rooms
            and event_id not in self.user_feeds.events
        ):
            self.tailer.unfollow(event_id)

    def remove(self, client: Client) -> None:
        """A socket is gone: out of every room, its resources freed."""
        for event_id in self.queue_watch.events():
            self._leave_queue(client, event_id)
        for event_id in list(client.cursors):
            self.leave_event(client, event_id)
        for user_id in list(client.users):
            self.leave_user(client, user_id)
        self._forget_user(client)
        peers = self.by_address.get(client.address or "")
        if peers is not None:
            peers.discard(client)
            if not peers:
                del self.by_address[client.address or ""]
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
                self.identify(client, principal)
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
            case protocol.JoinQueue(data=ref):
                await self.join_queue(client, ref.event_id)
                reply = protocol.Joined(data=protocol.QueueRoomJoined(event_id=ref.event_id))
            case protocol.LeaveQueue(data=ref):
                self._leave_queue(client, ref.event_id)
                reply = protocol.Left(data=protocol.QueueRoomLeft(event_id=ref.event_id))
            case _:
                assert_never(message)
        client.outbox.put(protocol.encode(reply))
