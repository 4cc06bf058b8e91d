"""Real-time feed: rooms over the events' feed streams, served at ``/ws``.

One :class:`Hub` per process. Its :class:`~engine.feed.FeedTailer` reads, with one blocking
XREAD, the feed of every event a local client watches (and, while someone watches a user
room, every armed event's feed for ``order:status-change``). Fan-out happens here, per
process, so any number of API processes need nothing between them.

Litestar's ChannelsPlugin was evaluated: its stream backend replays "the last N", not
"since an id"; it puts a TTL on stream keys and reads all channels in one XREAD that is not
cluster-safe, and its backlog drops per subscriber rather than conflating per category.
Replay-since-id, snapshots and conflation are the heart of this module, so the thin reading
loop is ours too (engine/feed.py).

Every socket has a bounded :class:`Outbox`: stock updates are conflated to the latest value
per category (moved to the end, so delivered ids only grow); other frames are kept in order
up to a bound, past which the socket is closed (1013) and the client resumes with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.security.jwt import JWTAuth, Token
from redis.asyncio import Redis

from api.security import Principal, verify_token
from engine import feed
from engine.core import Engine
from engine.feed import FeedEntry, FeedTailer, id_tuple
from engine.keys import ID_RE

log = logging.getLogger(__name__)

ROOM_EVENTS = {"ticket:stock-update", "ticket:almost-sold-out", "event:update"}
USER_EVENTS = {"order:status-change"}
MAX_ROOMS_PER_SOCKET = 100
MAX_QUEUED_FRAMES = 2000
MAX_BUFFERED_WHILE_JOINING = 10_000
MESSAGES_PER_SECOND = 50.0
MESSAGE_BURST = 100.0
USER_FEED_REFRESH_S = 1.0
FANOUT_CHUNK = 256
# After a read that delivered something, the tailer waits this long before reading again,
# so an on-sale's stream of updates arrives in batches (at most this much later).
FEED_LINGER_MS = 10


class Ready:
    """``asyncio.Event`` for one waiter (the socket's writer): a fan-out sets thousands of
    these per feed read, and this one wakes its writer with one future, no waiter list."""

    __slots__ = ("_value", "_waiter")

    def __init__(self) -> None:
        self._value = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        if self._waiter is not None:
            raise RuntimeError("Ready has one waiter at a time")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True


class Outbox:
    """A socket's bounded send queue with per-category conflation of stock updates."""

    def __init__(self, max_frames: int = MAX_QUEUED_FRAMES) -> None:
        self.max_frames = max_frames
        self.frames: OrderedDict[Hashable, bytes] = OrderedDict()
        self.ready = Ready()
        self.overflowed = False
        self.conflated = 0
        self.on_overflow: Callable[[], None] | None = None
        self._seq = itertools.count()

    def put(self, frame: bytes, conflate_key: Hashable | None = None) -> None:
        if conflate_key is not None:
            if self.frames.pop(conflate_key, None) is not None:
                self.conflated += 1
            self.frames[conflate_key] = frame
        else:
            self.frames[next(self._seq)] = frame
        if len(self.frames) > self.max_frames and not self.overflowed:
            self.overflowed = True
            if self.on_overflow is not None:
                self.on_overflow()  # the transport drops the socket even mid-send
        self.ready.set()

    def take(self) -> list[bytes]:
        out = list(self.frames.values())
        self.frames.clear()
        self.ready.clear()
        return out


@dataclass(eq=False)
class Client:
    """One connected socket: its rooms, per-event cursors and outbox."""

    principal: Principal | None = None
    outbox: Outbox = field(default_factory=Outbox)
    cursors: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    buffered: dict[str, list[FeedEntry]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    tokens: float = MESSAGE_BURST
    last_refill: float = field(default_factory=time.monotonic)

    def allow_message(self) -> bool:
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
        self.outbox.put(entry.frame, _conflate_key(entry))

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


def frame(event: str, data: Any, id_: str | None = None) -> bytes:
    body: dict[str, Any] = {"event": event, "data": data}
    if id_ is not None:
        body["id"] = id_
    return msgspec.json.encode(body)


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
        self.tailer = FeedTailer(redis, self.dispatch, linger_ms=FEED_LINGER_MS)
        self._user_feed_events: set[str] = set()

    async def authenticate(self, token: str) -> Principal | None:
        """The token's principal if it is valid and its user still exists."""
        return await verify_token(self.jwt_auth, token, self.store)

    # -- fan-out -------------------------------------------------------------------------

    async def dispatch(self, entries: list[FeedEntry]) -> None:
        """One tailer read's entries to the local sockets (the tailer reads again once
        this returns).

        A read can return many entries (as many as arrived while the last fan-out ran).
        Every outbox conflates stock updates per category anyway, so a stock update that a
        later one of the same category in this read supersedes is dropped before fan-out
        (each outbox ends exactly as if it had been put and replaced): the work per socket
        is one put per category and per other frame, whatever the update rate.

        A large room is woken :data:`FANOUT_CHUNK` sockets per event-loop turn: their
        writers send in that turn, and HTTP requests (holds) get a turn between chunks
        instead of waiting behind thousands of sends.
        """
        entries, superseded = _conflated(entries)
        i, n = 0, len(entries)
        while i < n:
            entry = entries[i]
            if entry.name in USER_EVENTS:
                for client in self.user_rooms.get(entry.user or "", ()):
                    client.outbox.put(entry.frame)
                i += 1
                continue
            # A run of room entries of one event: one pass over its room.
            j = i + 1
            while j < n and entries[j].event_id == entry.event_id:
                if entries[j].name in USER_EVENTS:
                    break
                j += 1
            room = self.rooms.get(entry.event_id)
            if room:
                run, dropped = entries[i:j], superseded.get(entry.event_id, 0)
                if len(room) <= FANOUT_CHUNK:
                    _fan_out(room, run, dropped)
                else:
                    # A copy: joins and leaves go on between chunks. One who joins now
                    # reads a snapshot at least as new as this run; one who leaves is
                    # skipped by its cursors.
                    clients = list(room)
                    for k in range(0, len(clients), FANOUT_CHUNK):
                        if k:
                            await asyncio.sleep(0)
                        _fan_out(clients[k : k + FANOUT_CHUNK], run, dropped)
            i = j

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

    async def join_event(self, client: Client, event_id: str, since: str | None) -> dict[str, Any]:
        if event_id not in client.cursors and len(client.cursors) >= MAX_ROOMS_PER_SOCKET:
            raise HubError("too_many_rooms", f"at most {MAX_ROOMS_PER_SOCKET} rooms per socket")
        # Register first (buffering), then read: nothing between the two is lost.
        client.cursors[event_id] = None
        client.buffered[event_id] = []
        self.rooms.setdefault(event_id, set()).add(client)
        if event_id not in self.tailer.positions:
            self.tailer.follow(event_id, await feed.latest_id(self.redis, event_id))
        replayed, complete = 0, False
        if since is not None:
            entries, complete = await feed.since(self.redis, event_id, since)
            if complete:
                for entry in entries:
                    if entry.name in ROOM_EVENTS:
                        client.send_entry(entry)
                        replayed += 1
                cursor_id = entries[-1].id if entries else since
        if since is None or not complete:
            stock, cursor_id = await feed.snapshot(self.redis, event_id)
            if stock is None:
                self.leave_event(client, event_id)
                raise HubError("event_not_found", f"event {event_id} not found")
            for c in stock.categories:
                client.outbox.put(
                    frame(
                        "ticket:stock-update",
                        {"eventoId": event_id, "categoriaId": c.id, "nuevoStock": c.available},
                        cursor_id,
                    ),
                    ("stock", event_id, c.id),
                )
        cursor = id_tuple(cursor_id)
        client.cursors[event_id] = cursor
        for entry in client.buffered.pop(event_id, []):
            client.deliver(entry)
        return {
            "eventId": event_id,
            "id": cursor_id,
            "replayed": replayed,
            "snapshot": since is None or not complete,
        }

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
        who = client.principal
        if who is None:
            raise HubError("unauthorized", "join:user needs a valid token (auth or ?token=)")
        if who.id != user_id and not who.is_admin:
            raise HubError("forbidden", "you may only join your own user room")
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

    async def handle(self, client: Client, raw: str | bytes) -> None:
        """One client message; answers with a frame on the client's outbox."""
        try:
            msg = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise HubError("bad_message", "messages are JSON objects") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
            raise HubError("bad_message", 'expected {"event": ..., "data": {...}}')
        name = msg["event"]
        data = msg.get("data", {})
        if not isinstance(data, dict):
            raise HubError("bad_message", "data must be an object")
        await self.handle_event(client, name, data)

    async def handle_event(self, client: Client, name: str, data: dict[str, Any]) -> None:
        if name == "auth":
            token = data.get("token")
            principal = await self.authenticate(token) if isinstance(token, str) else None
            if principal is None:
                raise HubError("unauthorized", "invalid token")
            client.principal = principal
            client.outbox.put(
                frame("authenticated", {"userId": principal.id, "role": principal.role})
            )
        elif name == "join:event":
            event_id = _id(data, "eventId")
            since = data.get("since")
            if since is not None and not (isinstance(since, str) and _valid_stream_id(since)):
                raise HubError("bad_message", "since must be a stream id like 1700000000000-0")
            ack = await self.join_event(client, event_id, since)
            client.outbox.put(frame("joined", {"room": "event", **ack}))
        elif name == "leave:event":
            event_id = _id(data, "eventId")
            self.leave_event(client, event_id)
            client.outbox.put(frame("left", {"room": "event", "eventId": event_id}))
        elif name == "join:user":
            user_id = _id(data, "userId")
            self.join_user(client, user_id)
            client.outbox.put(frame("joined", {"room": "user", "userId": user_id}))
        elif name == "leave:user":
            user_id = _id(data, "userId")
            self.leave_user(client, user_id)
            client.outbox.put(frame("left", {"room": "user", "userId": user_id}))
        else:
            raise HubError("unknown_event", f"unknown event {name[:64]!r}")


class HubError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _id(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not ID_RE.match(value):
        raise HubError("bad_message", f"{name} must be an id")
    return value


def _valid_stream_id(value: str) -> bool:
    ms, dash, seq = value.partition("-")
    return ms.isdigit() and len(ms) <= 20 and (not dash or (seq.isdigit() and len(seq) <= 20))


def _conflate_key(entry: FeedEntry) -> Hashable | None:
    return None if entry.category is None else ("stock", entry.event_id, entry.category)


def _conflated(entries: list[FeedEntry]) -> tuple[list[FeedEntry], dict[str, int]]:
    """``entries`` less every stock update that a later one of the same category follows,
    in order, and how many were left out per event."""
    seen: set[tuple[str, str]] = set()
    kept: list[FeedEntry] = []
    superseded: dict[str, int] = {}
    for entry in reversed(entries):
        if entry.category is not None:
            key = (entry.event_id, entry.category)
            if key in seen:
                superseded[entry.event_id] = superseded.get(entry.event_id, 0) + 1
                continue
            seen.add(key)
        kept.append(entry)
    kept.reverse()
    return kept, superseded


def _fan_out(room: Iterable[Client], run: list[FeedEntry], superseded: int) -> None:
    """Entries of one event (ids increasing) to every client of its room."""
    event_id = run[0].event_id
    first, last = id_tuple(run[0].id), id_tuple(run[-1].id)
    items = [(entry.frame, _conflate_key(entry)) for entry in run]
    for client in room:
        cursor = client.cursors.get(event_id)
        if cursor is not None and cursor < first:
            # The usual case: the client is past its join and behind this whole run.
            client.cursors[event_id] = last
            outbox = client.outbox
            outbox.conflated += superseded
            for data, key in items:
                outbox.put(data, key)
        else:
            for entry in run:
                client.deliver(entry)


async def serve_socket(hub: Hub, socket: WebSocket[Any, Any, Any]) -> None:
    """The life of one socket: reader loop here, writer task beside it."""
    await socket.accept()
    client = Client()
    hub.clients.add(client)
    token = socket.query_params.get("token")
    if token:
        client.principal = await hub.authenticate(token)
        if client.principal is None:
            client.outbox.put(frame("error", {"code": "unauthorized", "message": "invalid token"}))

    async def writer() -> None:
        outbox = client.outbox
        send = socket.send  # what send_text() calls, less two coroutine layers per frame
        while not client.closed.is_set():
            await outbox.ready.wait()
            if outbox.overflowed:
                await socket.close(code=1013, reason="too slow: reconnect with since")
                client.closed.set()
                return
            for data in outbox.take():
                await send({"type": "websocket.send", "bytes": None, "text": data.decode()})

    send_task = asyncio.create_task(writer())

    # A reader that stopped reading blocks the writer inside send: the overflow is acted
    # on from here, not from the writer's loop.
    def drop() -> None:
        send_task.cancel()

    client.outbox.on_overflow = drop
    try:
        while not client.closed.is_set():
            receive = asyncio.create_task(socket.receive_text())
            done, _ = await asyncio.wait({receive, send_task}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(BaseException):
                    await receive
                break
            raw = receive.result()
            if not client.allow_message():
                client.outbox.put(
                    frame("error", {"code": "rate_limited", "message": "too many messages"})
                )
                await asyncio.sleep(0)
                await socket.close(code=1008, reason="too many messages")
                break
            try:
                await hub.handle(client, raw)
            except HubError as e:
                client.outbox.put(frame("error", {"code": e.code, "message": e.message}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.remove(client)
        send_task.cancel()
        with contextlib.suppress(BaseException):
            await send_task
        if client.outbox.overflowed:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(
                    socket.close(code=1013, reason="too slow: reconnect with since"), 1.0
                )


@websocket("/ws", exclude_from_auth=True)
async def ws_endpoint(socket: WebSocket[Any, Any, Any]) -> None:
    hub: Hub = socket.app.state["onsale"].hub
    await serve_socket(hub, socket)
