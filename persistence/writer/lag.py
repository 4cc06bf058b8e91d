"""How far the store is behind Redis, and what a writer has done.

:func:`measure_lag` (and its :class:`WriterLag`) needs no writer in the process: the
API's readiness check and metrics call it too. :class:`WriterStats` and
:class:`BatchReport` count what one writer did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import keys
from engine.vocabulary import text
from persistence.writer.streams import id_ms, next_id


@dataclass
class BatchReport:
    """What one :meth:`OrderWriter.run_once` did."""

    read: int = 0
    written: int = 0
    acked: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0

    def add(self, other: BatchReport) -> None:
        self.read += other.read
        self.written += other.written
        self.acked += other.acked
        self.dead_lettered += other.dead_lettered
        self.reclaimed += other.reclaimed


@dataclass
class WriterStats:
    """Counters of one writer since start-up, read as ``writer.stats`` (the writer tests,
    ``loadtest/bench_writer.py``); api.metrics copies them into the ``onsale_writer_*_total``
    counters (docs/metrics.md)."""

    entries_read: int = 0
    orders_written: int = 0
    batches: int = 0
    acked: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    deleted_entries: int = 0
    store_retries: int = 0
    store_refusals: int = 0
    trimmed: int = 0
    errors: int = 0
    last_batch: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def record_batch(self, size: int, keep: int = 1000) -> None:
        self.batches += 1
        self.last_batch = size
        self.batch_sizes.append(size)
        del self.batch_sizes[:-keep]


class WriterLag(msgspec.Struct, kw_only=True):
    """How far the store is behind Redis, for /health/ready and /metrics.

    ``pending``: delivered to a writer, not yet acknowledged. ``undelivered``: not yet read
    by the writer group (on Redis < 7 counted up to ``count_cap`` per stream, and
    ``capped`` says so). ``oldest_age_ms``: age of the oldest unacknowledged entry, by the
    Redis clock (0 when caught up). ``dead_letters``: length of the dead-letter stream.
    """

    streams: int
    pending: int
    undelivered: int
    oldest_age_ms: int
    dead_letters: int
    capped: bool = False

    @property
    def unacked(self) -> int:
        return self.pending + self.undelivered


async def measure_lag(
    redis: Redis,
    event_ids: Iterable[str] | None = None,
    *,
    group: str = keys.WRITER_GROUP,
    count_cap: int = 1000,
) -> WriterLag:
    """Writer lag over the order logs of ``event_ids`` (default: every armed event).

    Usable without a writer in this process (the API's readiness check and metrics).
    """
    if event_ids is None:
        event_ids = [text(m) for m in await redis.smembers(keys.EVENTS)]
    streams = sorted(keys.order_log(e) for e in event_ids)
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    pending = undelivered = 0
    oldest: int | None = None
    capped = False

    def older(stream_id: str) -> None:
        nonlocal oldest
        ms = id_ms(stream_id)
        oldest = ms if oldest is None else min(oldest, ms)

    for stream in streams:
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            continue
        info = next((g for g in groups if text(g["name"]) == group), None)
        last = text(info["last-delivered-id"]) if info else "0-0"
        if info and int(info["pending"]):
            pending += int(info["pending"])
            summary = await redis.xpending(stream, group)
            if summary["min"] is not None:
                older(text(summary["min"]))
        ahead = await redis.xrange(stream, min=next_id(last), max="+", count=1) or []
        if not ahead:
            continue
        older(text(ahead[0][0]))
        exact = info.get("lag") if info else None  # Redis >= 7 keeps the count
        if exact is not None:
            undelivered += int(exact)
        else:
            window = await redis.xrange(stream, min=next_id(last), max="+", count=count_cap) or []
            undelivered += len(window)
            capped = capped or len(window) >= count_cap
    dead = int(await redis.xlen(keys.DEAD_LETTER))
    return WriterLag(
        streams=len(streams),
        pending=pending,
        undelivered=undelivered,
        oldest_age_ms=0 if oldest is None else max(0, now_ms - oldest),
        dead_letters=dead,
        capped=capped,
    )
