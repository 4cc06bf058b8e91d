"""Queued buyers' sockets (``join:queue``): their heartbeats and their place, in real time.

Once a second, one ``touch_queue`` call per event (for every buyer watched here) counts as
those buyers' heartbeat and reads their places; a buyer whose place moved gets one
``queue:position`` (so at most one a second: conflated by construction). ``queue:admitted``
reaches the buyer at once from the event's feed (the admit script writes it for the user's
channel) and ``queue:sold-out`` (one feed entry for the whole queue) goes to every buyer
watched here; the once-a-second read also says either of them if a feed entry was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.realtime import protocol
from api.realtime.client import Client
from engine.feed import FeedEntry
from engine.models import iso
from engine.queue import Place, QueueEngine

log = logging.getLogger(__name__)

POSITION_EVERY_S = 1.0


class QueueWatch:
    def __init__(self, queues: QueueEngine, every_s: float = POSITION_EVERY_S) -> None:
        self.queues = queues
        self.every_s = every_s
        self.watchers: dict[str, dict[str, set[Client]]] = {}
        self._sent: dict[tuple[str, str], tuple[object, ...]] = {}
        self._said: dict[tuple[str, str], str] = {}  # what was announced: token | "sold-out"

    def events(self) -> set[str]:
        return set(self.watchers)

    async def add(self, client: Client, event_id: str, user_id: str) -> None:
        """Watch ``user_id``'s place for ``client``; :class:`ClientError` when the user is
        not in the queue. The first position goes out at once."""
        try:
            places = await self.queues.places(event_id, [user_id])
        except Exception as e:
            code = getattr(e, "code", "")
            if code == "queue_not_found":
                raise protocol.ClientError(code, "this event has no admission queue") from None
            raise
        if places[0] is None:
            raise protocol.ClientError("not_in_queue", "join the queue first (POST .../join)")
        self.watchers.setdefault(event_id, {}).setdefault(user_id, set()).add(client)
        self._sent.pop((event_id, user_id), None)
        self._said.pop((event_id, user_id), None)
        self._tell(event_id, user_id, places[0])

    def remove(self, client: Client, event_id: str | None = None) -> None:
        for eid in [event_id] if event_id is not None else list(self.watchers):
            users = self.watchers.get(eid or "")
            if not users:
                continue
            for user_id in list(users):
                users[user_id].discard(client)
                if not users[user_id]:
                    del users[user_id]
                    self._sent.pop((eid or "", user_id), None)
                    self._said.pop((eid or "", user_id), None)
            if not users:
                del self.watchers[eid or ""]

    def route(self, entries: list[FeedEntry], user_rooms: dict[str, set[Client]]) -> None:
        """Feed entries for queued buyers watched here (a socket in the user's room got
        ``queue:admitted`` from the fan-out already)."""
        for entry in entries:
            if entry.name == "queue:sold-out":
                for user_id, clients in self.watchers.get(entry.event_id, {}).items():
                    self._said[(entry.event_id, user_id)] = "sold-out"
                    for client in clients:
                        client.outbox.put(entry.frame)
            elif entry.name == "queue:admitted" and entry.user:
                clients = self.watchers.get(entry.event_id, {}).get(entry.user, set())
                room = user_rooms.get(entry.user, set())
                self._said[(entry.event_id, entry.user)] = "admitted"
                for client in clients - room:
                    client.outbox.put(entry.frame)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for event_id in list(self.watchers):
                try:
                    await self._refresh(event_id)
                except Exception as e:
                    log.warning("queue watch of %s failed: %s", event_id, e)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

    async def _refresh(self, event_id: str) -> None:
        users = list(self.watchers.get(event_id, {}))
        if not users:
            return
        try:
            places = await self.queues.places(event_id, users)
        except Exception as e:
            if getattr(e, "code", "") == "queue_not_found":
                return  # deleted: the sockets keep their room, nothing more to say
            raise
        for user_id, place in zip(users, places, strict=True):
            if place is not None:
                self._tell(event_id, user_id, place)

    def _tell(self, event_id: str, user_id: str, place: Place) -> None:
        clients = self.watchers.get(event_id, {}).get(user_id)
        if not clients:
            return
        key = (event_id, user_id)
        frame: protocol.ServerFrame | None = None
        if place.status == "ADMITIDO" and place.token:
            if self._said.get(key) not in ("admitted", place.token):
                frame = protocol.QueueAdmittedFrame(
                    data=protocol.QueueAdmitted(
                        event_id=event_id,
                        token=place.token,
                        expires_at=iso(place.token_expires_ms or 0),
                    )
                )
            self._said[key] = place.token
        elif place.status == "AGOTADO":
            if self._said.get(key) != "sold-out":
                frame = protocol.QueueSoldOutFrame(data=protocol.QueueSoldOut(event_id=event_id))
            self._said[key] = "sold-out"
        elif place.status == "ESPERANDO":
            # Only a waiting buyer has a position: a used (USADO) or lost (PERDIDO) place
            # is told nothing, or a page would show it waiting again.
            self._said.pop(key, None)
            now = (place.position, place.ahead, place.eta_s, place.tickets_left)
            if self._sent.get(key) != now:
                self._sent[key] = now
                frame = protocol.QueuePosition(
                    data=protocol.QueuePositionData(
                        event_id=event_id,
                        position=place.position,
                        ahead=place.ahead,
                        eta_s=place.eta_s,
                        tickets_left=place.tickets_left,
                    )
                )
        if frame is not None:
            data = protocol.encode(frame)
            for client in clients:
                client.outbox.put(data)
