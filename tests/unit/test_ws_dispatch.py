"""The hub's fan-out drops superseded stock updates before fan-out: every socket's outbox
must end exactly as if each entry had been put one by one (the per-entry reference)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from api.realtime.client import Client
from api.realtime.fanout import FANOUT_CHUNK
from api.realtime.hub import Hub
from api.realtime.outbox import Ready
from api.realtime.protocol import USER_EVENTS
from engine.feed import FeedEntry


def entry(event_id: str, ms: int, name: str, category: str | None, user: str | None) -> FeedEntry:
    entry_id = f"{ms}-0"
    return FeedEntry(
        event_id=event_id,
        id=entry_id,
        name=name,
        user=user,
        category=category,
        frame=f"{event_id}:{entry_id}:{name}:{category}".encode(),
    )


def reference_dispatch(hub: Hub, entries: list[FeedEntry]) -> None:
    """The hub's dispatch before the per-read conflation: every entry to every client."""
    for e in entries:
        if e.name in USER_EVENTS:
            for client in hub.user_rooms.get(e.user or "", ()):
                client.outbox.put(e.frame)
        else:
            for client in hub.rooms.get(e.event_id, ()):
                client.deliver(e)


def random_batch(rng: random.Random, start_ms: int) -> list[FeedEntry]:
    out = []
    for i in range(rng.randint(1, 40)):
        event_id = rng.choice(["e1", "e2"])
        kind = rng.random()
        if kind < 0.6:
            out.append(entry(event_id, start_ms + i, "ticket:stock-update", rng.choice("ab"), None))
        elif kind < 0.8:
            out.append(entry(event_id, start_ms + i, "order:status-change", None, "u1"))
        elif kind < 0.9:
            out.append(entry(event_id, start_ms + i, "ticket:almost-sold-out", None, None))
        else:
            out.append(entry(event_id, start_ms + i, "event:update", None, None))
    return out


def world(rng: random.Random, n: int) -> tuple[Hub, list[Client]]:
    hub = Hub(redis=None, engine=None, jwt_auth=None, store=None)  # type: ignore[arg-type]
    clients = []
    for _ in range(n):
        client = Client()
        for event_id in ("e1", "e2"):
            if rng.random() < 0.7:
                # Joining (buffering), behind every entry, or somewhere inside the batch.
                cursor: Any = rng.choice([None, (0, 0), (1000 + rng.randint(0, 40), 0)])
                client.cursors[event_id] = cursor
                if cursor is None:
                    client.buffered[event_id] = []
                hub.rooms.setdefault(event_id, set()).add(client)
        if rng.random() < 0.5:
            client.users.add("u1")
            hub.user_rooms.setdefault("u1", set()).add(client)
        # Something already queued, so moved-to-the-end order is checked too.
        client.outbox.put(b"old-stock-e1-a", ("stock", "e1", "a"))
        client.outbox.put(b"old-other")
        clients.append(client)
    return hub, clients


def finish_joins(clients: list[Client]) -> None:
    """What join_event does once its snapshot is read: set the cursor, flush the buffer."""
    for c in clients:
        for event_id, cursor in list(c.cursors.items()):
            if cursor is None:
                c.cursors[event_id] = (1060, 0)
                for e in c.buffered.pop(event_id, []):
                    c.deliver(e)


def state(clients: list[Client]) -> list[Any]:
    return [
        (list(c.outbox.frames.items()), dict(c.cursors), c.outbox.ready.is_set()) for c in clients
    ]


@pytest.mark.parametrize(("seeds", "sockets"), [(300, 12), (4, FANOUT_CHUNK * 2 + 7)])
async def test_dispatch_matches_entry_by_entry_delivery(seeds: int, sockets: int) -> None:
    for seed in range(seeds):
        batches = [random_batch(random.Random(seed * 7 + k), 1000 + 50 * k) for k in range(3)]
        hub_a, clients_a = world(random.Random(seed), sockets)
        hub_b, clients_b = world(random.Random(seed), sockets)
        for batch in batches:
            await hub_a.dispatch(batch)
            reference_dispatch(hub_b, batch)
        finish_joins(clients_a)
        finish_joins(clients_b)
        assert state(clients_a) == state(clients_b), seed


async def test_ready_wakes_its_one_waiter() -> None:
    ready = Ready()
    waiter = asyncio.create_task(ready.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    ready.set()
    assert await asyncio.wait_for(waiter, 1) is True
    assert ready.is_set() and await ready.wait()  # set: returns at once
    ready.clear()
    cancelled = asyncio.create_task(ready.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    again = asyncio.create_task(ready.wait())  # a cancelled wait leaves no waiter behind
    await asyncio.sleep(0)
    ready.set()
    assert await asyncio.wait_for(again, 1) is True


async def test_a_socket_that_leaves_during_a_chunked_fan_out_gets_nothing_more() -> None:
    hub = Hub(redis=None, engine=None, jwt_auth=None, store=None)  # type: ignore[arg-type]
    clients = [Client() for _ in range(FANOUT_CHUNK * 3)]
    for c in clients:
        c.cursors["e1"] = (0, 0)
        hub.rooms.setdefault("e1", set()).add(c)
    batch = [entry("e1", 1000 + i, "ticket:stock-update", "a", None) for i in range(5)]
    fan_out = asyncio.create_task(hub.dispatch(batch))
    await asyncio.sleep(0)  # the first chunk is out; the rest waits for the next turns
    pending = [c for c in clients if not c.outbox.frames]
    assert len(pending) == FANOUT_CHUNK * 2
    leaver = pending[-1]
    hub.leave_event(leaver, "e1")
    await fan_out
    assert not leaver.outbox.frames
    got = [list(c.outbox.frames.values()) for c in clients if c is not leaver]
    assert all(frames == [batch[-1].frame] for frames in got)  # conflated to the last
