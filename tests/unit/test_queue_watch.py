"""The queue watch and the fan-out tell each socket each admission once, never a state
older than one it was told, and never miss one (api/realtime/client.py ``QueueTold``).

The interleavings a real server only shows by chance are forced here: a read of the
places held open while a feed entry is delivered, a feed entry delivered after a newer
read, the same admission by the feed, the read and a replay. The integration side (real
server, /ws and Socket.IO) is tests/integration/test_queue_admitted_once.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api.realtime import protocol
from api.realtime.client import Client
from api.realtime.fanout import dispatch
from api.realtime.queue_watch import QueueWatch
from engine.feed import FeedEntry
from engine.queue import Place

E, U = "evt1", "user1"


class FakeQueues:
    """``QueueEngine.places`` answering what the test set; ``gate`` holds a read open."""

    def __init__(self) -> None:
        self.places_of: dict[str, Place | None] = {}
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def places(self, event_id: str, user_ids: list[str]) -> list[Place | None]:
        answer = [self.places_of.get(u) for u in user_ids]  # as Redis ran it: now
        self.reading.set()
        if self.gate is not None:
            await self.gate.wait()
        return answer


def place(status: str, read_ms: int, token: str | None = None, ahead: int | None = None) -> Place:
    return Place(
        event_id=E,
        user_id=U,
        status=status,
        position=None if ahead is None else ahead + 1,
        ahead=ahead,
        eta_s=None,
        tickets_left=5,
        token=token,
        token_expires_ms=read_ms + 600_000 if token else None,
        read_ms=read_ms,
    )


def admitted(ms: int, token: str, user: str = U) -> FeedEntry:
    data = {"eventoId": E, "admisionToken": token, "admisionExpiraEn": "2027-01-01T00:00:00Z"}
    entry_id = f"{ms}-0"
    return FeedEntry(
        event_id=E,
        id=entry_id,
        name="queue:admitted",
        user=user,
        category=None,
        frame=protocol.feed_frame("queue:admitted", json.dumps(data).encode(), entry_id),
        admission=token,
    )


def sold_out(ms: int) -> FeedEntry:
    entry_id = f"{ms}-0"
    data = json.dumps({"eventoId": E}).encode()
    return FeedEntry(
        event_id=E,
        id=entry_id,
        name="queue:sold-out",
        user=None,
        category=None,
        frame=protocol.feed_frame("queue:sold-out", data, entry_id),
    )


def told(client: Client) -> list[tuple[str, Any]]:
    """The frames put on the client's outbox since last asked: (event, the detail)."""
    out = []
    for raw in client.outbox.take():
        frame = json.loads(raw)
        data = frame["data"]
        detail = data.get("admisionToken", data.get("delante"))
        out.append((frame["event"], detail))
    return out


async def deliver(
    watch: QueueWatch, user_rooms: dict[str, set[Client]], entries: list[FeedEntry]
) -> None:
    """As Hub.dispatch: the fan-out, then the queue watch."""
    await dispatch({}, user_rooms, entries)
    watch.route(entries)


def world() -> tuple[FakeQueues, QueueWatch]:
    queues = FakeQueues()
    return queues, QueueWatch(queues)  # type: ignore[arg-type]


async def test_a_read_older_than_a_feed_entry_is_not_applied() -> None:
    """The read started, the admission's feed entry came while it was in flight, then
    its answer (the buyer still waiting, one place further) came: no position after the
    admission, and no admission again from the next read."""
    queues, watch = world()
    c = Client()
    queues.places_of[U] = place("ESPERANDO", 1000, ahead=3)
    await watch.add(c, E, U)
    assert told(c) == [("queue:position", 3)]

    queues.places_of[U] = place("ESPERANDO", 2000, ahead=2)  # Redis ran the read here
    queues.gate = asyncio.Event()
    queues.reading.clear()
    read = asyncio.ensure_future(watch._refresh(E))
    await queues.reading.wait()
    await deliver(watch, {}, [admitted(2001, "T")])  # then the admission, delivered first
    queues.gate.set()
    await read
    assert told(c) == [("queue:admitted", "T")]

    queues.gate = None
    queues.places_of[U] = place("ADMITIDO", 3000, token="T")
    await watch._refresh(E)
    assert told(c) == []


async def test_a_feed_entry_older_than_a_read_is_not_told() -> None:
    """The tailer lags: the read already found the buyer admitted again (T2) when the
    entries of an earlier admission (T1, since left) and of T2 come. Neither is told;
    a later admission is."""
    queues, watch = world()
    c = Client()
    queues.places_of[U] = place("ADMITIDO", 5000, token="T2")
    await watch.add(c, E, U)
    assert told(c) == [("queue:admitted", "T2")]
    await deliver(watch, {U: {c}}, [admitted(4000, "T1"), admitted(4500, "T2")])
    assert told(c) == []
    await deliver(watch, {U: {c}}, [admitted(5000, "T3")])  # the read's millisecond: told
    assert told(c) == [("queue:admitted", "T3")]


async def test_a_sell_out_older_than_a_reopening_read_is_not_told() -> None:
    """A read said the sell-out, a later one found the queue reopened (waiting again):
    the sell-out's own entry, delivered late, is not told; the next sell-out is."""
    queues, watch = world()
    c = Client()
    queues.places_of[U] = place("AGOTADO", 1000)
    await watch.add(c, E, U)
    assert told(c) == [("queue:sold-out", None)]
    queues.places_of[U] = place("ESPERANDO", 2000, ahead=0)
    await watch._refresh(E)
    assert told(c) == [("queue:position", 0)]
    watch.route([sold_out(999)])
    assert told(c) == []
    watch.route([sold_out(2500)])
    assert told(c) == [("queue:sold-out", None)]
    watch.route([sold_out(2600)])  # once per sell-out
    assert told(c) == []


async def test_each_path_tells_a_socket_an_admission_once() -> None:
    """The feed entry to a socket in the user's room and the queue, to one in the queue
    only and to one in the room only; the read of the same admission, a second socket
    joining, and a replay of the entry: each socket is told once."""
    queues, watch = world()
    both, queue_only, room_only = Client(), Client(), Client()
    rooms = {U: {both, room_only}}
    queues.places_of[U] = place("ESPERANDO", 1000, ahead=0)
    for c in (both, queue_only):
        await watch.add(c, E, U)
        assert told(c) == [("queue:position", 0)]
    await deliver(watch, rooms, [admitted(1500, "T")])
    for c in (both, queue_only, room_only):
        assert told(c) == [("queue:admitted", "T")]

    queues.places_of[U] = place("ADMITIDO", 2000, token="T")
    await watch._refresh(E)
    late = Client()
    await watch.add(late, E, U)  # a second tab: told at once, the others not again
    assert told(late) == [("queue:admitted", "T")]
    await deliver(watch, rooms, [admitted(1500, "T")])  # a replay (a user room re-followed)
    for c in (both, queue_only, room_only, late):
        assert told(c) == []

    # The read first, the entry after (the tailer behind): once too.
    queues.places_of[U] = place("ESPERANDO", 3000, ahead=4)  # left, joined again
    await watch._refresh(E)
    queues.places_of[U] = place("ADMITIDO", 4000, token="T2")
    await watch._refresh(E)
    for c in (both, queue_only, late):
        assert told(c) == [("queue:position", 4), ("queue:admitted", "T2")]
    await deliver(watch, rooms, [admitted(3999, "T2")])
    assert told(room_only) == [("queue:admitted", "T2")]
    for c in (both, queue_only, late):
        assert told(c) == []

    # Out of the queue, still in the user's room, which then replays the feed: the
    # socket still knows what it was told.
    watch.remove(both, E)
    await deliver(watch, rooms, [admitted(1500, "T"), admitted(3999, "T2")])
    assert told(both) == [] and told(room_only) == []


async def test_an_admission_is_never_missed() -> None:
    """What the guards must not swallow: a new admission by the feed after any read; one
    by the read after a feed entry of another; the socket that left the queue still told
    by its user room; a socket of another buyer told nothing."""
    queues, watch = world()
    c, other = Client(), Client()
    queues.places_of[U] = place("ESPERANDO", 1000, ahead=1)
    queues.places_of["user2"] = place("ESPERANDO", 1000, ahead=0)
    await watch.add(c, E, U)
    await watch.add(other, E, "user2")
    told(c), told(other)
    await deliver(watch, {U: {c}}, [admitted(1000, "T1")])
    assert told(c) == [("queue:admitted", "T1")]
    assert told(other) == []

    # T1 left; joined again and admitted (T2) before the feed said so: the read says it.
    queues.places_of[U] = place("ADMITIDO", 3000, token="T2")
    await watch._refresh(E)
    assert told(c) == [("queue:admitted", "T2")]

    # Out of the queue watch, still in the user's room: the next admission comes.
    watch.remove(c, E)
    await deliver(watch, {U: {c}}, [admitted(4000, "T3")])
    assert told(c) == [("queue:admitted", "T3")]
