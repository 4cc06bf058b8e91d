"""Fan-out of one feed read to this process's sockets.

The hot path: :func:`dispatch` runs for every tailer read. Each entry's frame was encoded
once when it was read (:func:`api.realtime.protocol.feed_frame`); here the same ``bytes``
goes into every subscriber's outbox, never re-encoded per socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from api.realtime.client import Client, conflate_key
from api.realtime.protocol import USER_EVENTS
from engine.feed import FeedEntry, id_tuple

FANOUT_CHUNK = 256

Rooms = dict[str, set[Client]]


async def dispatch(rooms: Rooms, user_rooms: Rooms, entries: list[FeedEntry]) -> None:
    """One tailer read's entries to the local sockets (the tailer reads again once this
    returns); ``rooms`` by event id, ``user_rooms`` by user id.

    A read can return many entries (as many as arrived while the last fan-out ran).
    Every outbox conflates stock updates per category anyway, so a stock update that a
    later one of the same category in this read supersedes is dropped before fan-out
    (each outbox ends exactly as if it had been put and replaced): the work per socket
    is one put per category and per other frame, whatever the update rate.

    A large room is woken :data:`FANOUT_CHUNK` sockets per event-loop turn: their
    writers send in that turn, and HTTP requests (holds) get a turn between chunks
    instead of waiting behind thousands of sends.
    """
    entries = _conflated(entries)
    i, n = 0, len(entries)
    while i < n:
        entry = entries[i]
        if entry.name in USER_EVENTS:
            token = entry.admission
            if token is None:
                for client in user_rooms.get(entry.user or "", ()):
                    client.outbox.put(entry.frame)
            else:  # queue:admitted: once per socket (api/realtime/client.py QueueTold)
                entry_ms = id_tuple(entry.id)[0]
                for client in user_rooms.get(entry.user or "", ()):
                    if client.told(entry.event_id).admitted_by_feed(token, entry_ms):
                        client.outbox.put(entry.frame)
            i += 1
            continue
        # A run of room entries of one event: one pass over its room.
        j = i + 1
        while j < n and entries[j].event_id == entry.event_id:
            if entries[j].name in USER_EVENTS:
                break
            j += 1
        room = rooms.get(entry.event_id)
        if room:
            run = entries[i:j]
            if len(room) <= FANOUT_CHUNK:
                _fan_out(room, run)
            else:
                # A copy: joins and leaves go on between chunks. One who joins now reads
                # a snapshot at least as new as this run; one who leaves is skipped by
                # its cursors.
                clients = list(room)
                for k in range(0, len(clients), FANOUT_CHUNK):
                    if k:
                        await asyncio.sleep(0)
                    _fan_out(clients[k : k + FANOUT_CHUNK], run)
        i = j


def _conflated(entries: list[FeedEntry]) -> list[FeedEntry]:
    """``entries`` less every stock update that a later one of the same category follows,
    in order."""
    seen: set[tuple[str, str]] = set()
    kept: list[FeedEntry] = []
    for entry in reversed(entries):
        if entry.category is not None:
            key = (entry.event_id, entry.category)
            if key in seen:
                continue
            seen.add(key)
        kept.append(entry)
    kept.reverse()
    return kept


def _fan_out(room: Iterable[Client], run: list[FeedEntry]) -> None:
    """Entries of one event (ids increasing) to every client of its room."""
    event_id = run[0].event_id
    first, last = id_tuple(run[0].id), id_tuple(run[-1].id)
    items = [(entry.frame, conflate_key(entry)) for entry in run]
    for client in room:
        cursor = client.cursors.get(event_id)
        if cursor is not None and cursor < first:
            # The usual case: the client is past its join and behind this whole run.
            client.cursors[event_id] = last
            outbox = client.outbox
            for data, key in items:
                outbox.put(data, key)
        else:
            for entry in run:
                client.deliver(entry)
