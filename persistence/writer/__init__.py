"""The order writer: every event's order-log stream in Redis -> the store.

Guarantees (see docs/persistence.md):

* **At least once.** Entries are read through the consumer group ``keys.WRITER_GROUP``
  and acknowledged (XACK) only after the store acknowledged the write. A writer that dies
  leaves its entries pending; it re-reads its own pending entries when it restarts under
  the same consumer name, and any writer reclaims entries idle longer than
  ``min_idle_ms`` from another consumer (XAUTOCLAIM).
* **Idempotent.** Orders are upserted by id and only by a version >= the stored one, so a
  replayed or reordered entry changes nothing. Together: exactly once in the store.
* **Poison never blocks, valid orders are never parked.** Only an entry that cannot be
  decoded or validated as an order of its log's event is copied to the dead-letter
  stream ``keys.DEAD_LETTER`` and acknowledged. Delivery counts play no part (restarts,
  reclaims and outages redeliver valid entries). :func:`replay_dead_letters`
  (``onsale writer --replay-dead``) puts dead letters back into their logs.
* **Store outages.** ``StoreUnavailable`` makes the writer back off exponentially (capped)
  and retry the same batch, without acknowledging and without re-reading it (so an
  outage does not count as a delivery). A store that refuses valid orders
  (``StoreError``) is retried the same way, order by order, never dead-lettered.
* **Trimming.** A log stream is trimmed with ``XTRIM MINID`` to the oldest entry some
  group on it has not acknowledged (lowest pending id, else the entry after the group's
  last-delivered id), never with MAXLEN.

Modules, one job each:

* :mod:`~persistence.writer.consumer` — :class:`OrderWriter`: the loop (read, reclaim,
  process, ack, trim) and its policy.
* :mod:`~persistence.writer.persisting` — the store writes: outages waited out, refused
  batches written order by order, :class:`WriterStopped`.
* :mod:`~persistence.writer.streams` — stream ids, :class:`Entry`, XREADGROUP.
* :mod:`~persistence.writer.groups` — consumer-group bookkeeping (create, ack, claim,
  delivery counts, idle consumers).
* :mod:`~persistence.writer.dead_letters` — what is poison, the dead-letter stream, replay.
* :mod:`~persistence.writer.trimming` — ``XTRIM MINID`` behind the slowest group.
* :mod:`~persistence.writer.lag` — :func:`measure_lag`, :class:`WriterLag`,
  :class:`WriterStats`.
* :mod:`~persistence.writer.durability` — :func:`wait_persisted`, :class:`CommitSignal`.
* :mod:`~persistence.writer.backlog` — :func:`unpersisted_orders`: what the store does
  not hold yet (read-your-writes for readers of the store).

Every process that runs a writer (``onsale writer``, an API worker with RUN_WRITER) builds
it with :func:`build_writer`, which names the consumer.
"""

from __future__ import annotations

import os
import socket

from redis.asyncio import Redis

from persistence.aio import AsyncStore
from persistence.writer.backlog import BacklogTooLarge, unpersisted_orders
from persistence.writer.consumer import OrderWriter, WriterStopped
from persistence.writer.dead_letters import Replayed, dead_letter_count, replay_dead_letters
from persistence.writer.durability import CommitSignal, wait_persisted
from persistence.writer.lag import BatchReport, WriterLag, WriterStats, measure_lag
from persistence.writer.streams import Entry, id_ms, next_id, parse_id

__all__ = [
    "BacklogTooLarge",
    "BatchReport",
    "CommitSignal",
    "Entry",
    "OrderWriter",
    "Replayed",
    "WriterLag",
    "WriterStats",
    "WriterStopped",
    "build_writer",
    "consumer_name",
    "dead_letter_count",
    "id_ms",
    "measure_lag",
    "next_id",
    "parse_id",
    "replay_dead_letters",
    "unpersisted_orders",
    "wait_persisted",
]


def consumer_name(name: str | None = None) -> str:
    """``name``, else ``<hostname>-<pid>``: unique per process, so a restarted writer
    comes back under a new name and its old pending entries are reclaimed by idle time."""
    return name or f"{socket.gethostname()}-{os.getpid()}"


def build_writer(
    redis: Redis,
    store: AsyncStore,
    *,
    name: str | None = None,
    linger_ms: int = 0,
    batch: int = 500,
    block_ms: int = 1_000,
    min_idle_ms: int = 30_000,
    reclaim_interval_ms: int = 5_000,
) -> OrderWriter:
    """The :class:`OrderWriter` of this process, consumer named by :func:`consumer_name`.

    ``linger_ms`` is WRITER_LINGER_MS; the rest are :class:`OrderWriter`'s tuning, at
    its defaults unless given (``onsale writer --batch ...``)."""
    return OrderWriter(
        redis,
        store,
        consumer_name(name),
        linger_ms=linger_ms,
        batch=batch,
        block_ms=block_ms,
        min_idle_ms=min_idle_ms,
        reclaim_interval_ms=reclaim_interval_ms,
    )
