"""Queued buyers' sockets (``join:queue``): their heartbeats and their place, in real time.

Once a second, one ``touch_queue`` call per event (for every buyer watched here) counts as
those buyers' heartbeat and reads their places; a buyer whose place moved gets one
``queue:position`` (so at most one a second: conflated by construction). ``queue:admitted``
reaches the buyer at once from the event's feed (the admit script writes it for the user's
channel) and ``queue:sold-out`` (one feed entry for the whole queue) goes to every buyer
watched here; the once-a-second read also says either of them if a feed entry was missed
(or is not delivered yet, or was before the socket joined).

Both paths decide per socket, with what that socket was told
(:class:`~api.realtime.client.QueueTold`): each admission is told once to each socket,
whichever path comes first (the other is then silent), and a read that is older than what
the socket was told is not applied to it. What a join says goes to the joining socket
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.realtime import protocol
from api.realtime.client import Client, mark
from engine.feed import FeedEntry, id_tuple
from engine.models import iso
from engine.queue import Place, QueueEngine

log = logging.getLogger(__name__)

POSITION_EVERY_S = 1.0


class QueueWatch:
    def __init__(self, queues: QueueEngine, every_s: float = POSITION_EVERY_S) -> None:
        self.queues = queues
        self.every_s = every_s
        self.watchers: dict[str, dict[str, set[Client]]] = {}

    def events(self) -> set[str]:
        return set(self.watchers)

    async def add(self, client: Client, event_id: str, user_id: str) -> None:
        """Watch ``user_id``'s place for ``client``; :class:`ClientError` when the user is
        not in the queue. The place goes out to ``client`` at once: its position, or its
        sell-out, even if told before; an admission only if not told to it before."""
        told = client.told(event_id)
        told.position, told.sold_out = None, False
        started = mark()
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
        self._tell(event_id, places[0], started, {client})

    def remove(self, client: Client, event_id: str | None = None) -> None:
        for eid in [event_id] if event_id is not None else list(self.watchers):
            users = self.watchers.get(eid or "")
            if not users:
                continue
            for user_id in list(users):
                clients = users[user_id]
                if client not in clients:
                    continue
                clients.discard(client)
                client.told(eid or "").unwatched()
                if not clients:
                    del users[user_id]
            if not users:
                del self.watchers[eid or ""]

    def route(self, entries: list[FeedEntry]) -> None:
        """Feed entries for queued buyers watched here. A socket also in the user's room
        was handed ``queue:admitted`` by the fan-out first: it is told once all the same."""
        for entry in entries:
            users = self.watchers.get(entry.event_id)
            if not users:
                continue
            if entry.name == "queue:sold-out":
                entry_ms = id_tuple(entry.id)[0]
                for clients in users.values():
                    for client in clients:
                        if client.told(entry.event_id).sold_out_by_feed(entry_ms):
                            client.outbox.put(entry.frame)
            elif entry.name == "queue:admitted" and entry.user:
                token, entry_ms = entry.admission, id_tuple(entry.id)[0]
                for client in users.get(entry.user, ()):
                    told = client.told(entry.event_id)
                    if token is None or told.admitted_by_feed(token, entry_ms):
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
        started = mark()
        try:
            places = await self.queues.places(event_id, users)
        except Exception as e:
            if getattr(e, "code", "") == "queue_not_found":
                return  # deleted: the sockets keep their room, nothing more to say
            raise
        for user_id, place in zip(users, places, strict=True):
            clients = self.watchers.get(event_id, {}).get(user_id)
            if place is not None and clients:
                self._tell(event_id, place, started, clients)

    def _tell(self, event_id: str, place: Place, started: int, clients: set[Client]) -> None:
        """A place read (that started at ``started``) to the buyer's sockets: to each,
        only what it was not told, and nothing if it was told something newer."""
        frames: dict[str, bytes] = {}

        def frame(kind: str) -> bytes:
            data = frames.get(kind)
            if data is None:
                data = frames[kind] = protocol.encode(_frame(kind, event_id, place))
            return data

        status = place.status
        figures = (place.position, place.ahead, place.eta_s, place.tickets_left)
        for client in clients:
            told = client.told(event_id)
            if not told.read(started, place.read_ms):
                continue
            if status == "ADMITIDO" and place.token:
                if told.admitted(place.token):
                    client.outbox.put(frame("admitted"))
            elif status == "AGOTADO":
                if not told.sold_out:
                    told.sold_out = True
                    client.outbox.put(frame("sold-out"))
            elif status == "ESPERANDO":
                # Only a waiting buyer has a position: a used (USADO) or lost (PERDIDO)
                # place is told nothing, or a page would show it waiting again.
                told.sold_out = False  # waiting again: a later sell-out is news
                if told.position != figures:
                    told.position = figures
                    client.outbox.put(frame("position"))


def _frame(kind: str, event_id: str, place: Place) -> protocol.ServerFrame:
    if kind == "admitted":
        return protocol.QueueAdmittedFrame(
            data=protocol.QueueAdmitted(
                event_id=event_id,
                token=place.token or "",
                expires_at=iso(place.token_expires_ms or 0),
            )
        )
    if kind == "sold-out":
        return protocol.QueueSoldOutFrame(data=protocol.QueueSoldOut(event_id=event_id))
    return protocol.QueuePosition(
        data=protocol.QueuePositionData(
            event_id=event_id,
            position=place.position,
            ahead=place.ahead,
            eta_s=place.eta_s,
            tickets_left=place.tickets_left,
        )
    )
