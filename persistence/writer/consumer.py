"""The order writer's consumer: :class:`OrderWriter` reads every armed event's order log
through the consumer group, reclaims what dead consumers left, persists, acknowledges.

The guarantees are the package's (see :mod:`persistence.writer`): acknowledged only
after the store acknowledged the write, idempotent upserts, poison (undecodable or
invalid entries, nothing else) dead-lettered, store outages and refusals waited out,
logs trimmed behind the slowest group. The Redis commands behind
each step live in the sibling modules, the store policy (backoff, refusals) in
:mod:`~persistence.writer.persisting`; this one holds the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import keys
from engine.core import retire_persisted
from persistence.aio import AsyncStore
from persistence.writer.companions import ensure_companion_groups
from persistence.writer.dead_letters import dead_letter, triage
from persistence.writer.durability import CommitSignal, wait_persisted
from persistence.writer.groups import (
    ack,
    claim_idle,
    consumed,
    delivery_counts,
    ensure_group,
    forget_idle_consumers,
)
from persistence.writer.lag import BatchReport, WriterLag, WriterStats, measure_lag
from persistence.writer.persisting import OrderPersister, WriterStopped
from persistence.writer.streams import Entry, order_logs, read_group
from persistence.writer.trimming import trim_point, trim_stream

__all__ = ["GC_INTERVAL_S", "OrderWriter", "WriterStopped"]

log = logging.getLogger(__name__)

GC_INTERVAL_S = 60.0  # how often idle consumers are looked for


class OrderWriter:
    """Consumes every armed event's order log and persists the orders (see module doc).

    One instance per process; several processes (distinct ``consumer_name``) share the
    work through the consumer group. ``block_ms <= 0`` reads without blocking (tests).
    """

    def __init__(
        self,
        redis: Redis,
        store: AsyncStore,
        consumer_name: str,
        *,
        batch: int = 500,
        block_ms: int = 1_000,
        linger_ms: int = 0,
        min_idle_ms: int = 30_000,
        reclaim_interval_ms: int = 5_000,
        trim_interval_ms: int = 1_000,
        refresh_interval_ms: int = 1_000,
        backoff_initial_ms: int = 50,
        backoff_max_ms: int = 5_000,
        trim_approximate: bool = True,
        consumer_idle_gc_ms: int = 3_600_000,
        group: str = keys.WRITER_GROUP,
    ) -> None:
        if batch < 1 or min_idle_ms < 0:
            raise ValueError("batch must be >= 1, min_idle_ms >= 0")
        self.redis = redis
        self.store = store
        self.consumer = consumer_name
        self.group = group
        self.batch = batch
        self.block_ms = block_ms
        self.linger_s = max(0, linger_ms) / 1000
        self.min_idle_ms = min_idle_ms
        self.reclaim_interval_s = reclaim_interval_ms / 1000
        self.trim_interval_s = trim_interval_ms / 1000
        self.refresh_interval_s = refresh_interval_ms / 1000
        self.backoff_initial_s = backoff_initial_ms / 1000
        self.backoff_max_s = max(backoff_max_ms, backoff_initial_ms) / 1000
        self.trim_approximate = trim_approximate
        self.consumer_idle_gc_ms = consumer_idle_gc_ms
        self.stats = WriterStats()
        self._persister = OrderPersister(
            store,
            self.stats,
            self._sleep,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )
        self.commits = CommitSignal()
        self._streams: dict[str, str] = {}  # log stream -> event id
        self._scanned = False
        self._backlog = True  # read our own pending entries first (restart, failure)
        self._next_refresh = 0.0
        self._next_reclaim = 0.0
        self._next_trim = time.monotonic() + self.trim_interval_s
        self._next_gc = 0.0
        self._stop = asyncio.Event()
        self._prefetch: asyncio.Task[list[Entry]] | None = None
        self._last_read = 0

    @property
    def streams(self) -> list[str]:
        return list(self._streams)

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Persist until ``stop`` is set. Redis or store failures are logged and retried
        with capped exponential backoff; nothing is acknowledged that was not stored."""
        self._stop = stop
        delay = self.backoff_initial_s
        log.info("order writer %s started (group %s)", self.consumer, self.group)
        while not stop.is_set():
            try:
                await self.run_once()
                delay = self.backoff_initial_s
                continue
            except WriterStopped:
                break
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning("redis unavailable, retrying in %.2fs: %s", delay, e)
            except Exception:
                log.exception("writer batch failed, retrying in %.2fs", delay)
            # Whatever we read and did not acknowledge is re-read (a delivery is counted).
            self._backlog = True
            self.stats.errors += 1
            await self._drop_prefetch()
            if await self._sleep(delay):
                break
            delay = min(delay * 2, self.backoff_max_s)
        await self._drop_prefetch()
        log.info("order writer %s stopped", self.consumer)

    async def run_once(self) -> BatchReport:
        """One step: refresh streams, reclaim or read one batch, persist, ack, trim."""
        report = BatchReport()
        now = time.monotonic()
        if now >= self._next_refresh:
            await self.refresh_streams()
            self._next_refresh = now + self.refresh_interval_s
        if not self._streams:
            if self.block_ms > 0:
                await self._sleep(min(self.block_ms / 1000, self.refresh_interval_s))
            return report
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.reclaim_interval_s
            claimed = await self.reclaim()
            report.reclaimed = len(claimed)
            if len(claimed) >= self.batch:
                self._next_reclaim = 0.0  # a full batch: there is probably more to claim
            report.add(await self.process(claimed, redelivered=True))
        if not report.read and self._backlog:
            own = await self._read("0", block=False)
            if own:
                report.add(await self.process(own, redelivered=True))
            else:
                self._backlog = False
        if not report.read:
            report.add(await self.process(await self._read_new(), redelivered=False))
        if time.monotonic() >= self._next_trim:
            self._next_trim = time.monotonic() + self.trim_interval_s
            await self.trim()
        return report

    async def run_until_idle(self, within_s: float = 30.0, max_steps: int = 100_000) -> BatchReport:
        """Run steps until one reads nothing and nothing of ours is pending (tests, bench).
        TimeoutError when that takes longer than ``within_s`` or ``max_steps``."""
        total = BatchReport()
        deadline = time.monotonic() + within_s
        for _ in range(max_steps):
            step = await self.run_once()
            total.add(step)
            if not step.read and not self._backlog:
                return total
            if time.monotonic() > deadline:
                break
        await self._drop_prefetch()
        self._backlog = True
        raise TimeoutError(f"writer not idle after {within_s}s / {max_steps} steps")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stop is requested; True when it was."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # -- streams and groups ----------------------------------------------------------------

    async def refresh_streams(self) -> None:
        """Follow ``keys.EVENTS``: add new events' logs (creating the group at id 0),
        and drop a departed event's log once the group has consumed all of it."""
        wanted = await order_logs(self.redis, scan=not self._scanned)
        self._scanned = True
        for stream, event_id in wanted.items():
            if stream not in self._streams:
                await ensure_group(self.redis, stream, self.group)
                await ensure_companion_groups(self.redis, stream)  # before any trim
                self._streams[stream] = event_id
        for stream in [s for s in self._streams if s not in wanted]:
            if await consumed(self.redis, stream, self.group):
                await self._trim_stream(stream)
                del self._streams[stream]

    async def _regroup(self) -> None:
        """After NOGROUP (a log was deleted and recreated): recreate the missing groups."""
        for stream in self._streams:
            await ensure_group(self.redis, stream, self.group)

    # -- reading ---------------------------------------------------------------------------

    async def _read(self, start: Literal[">", "0"], *, block: bool) -> list[Entry]:
        """XREADGROUP every followed log: new entries (">") or our own pending ones ("0").

        Pending entries deleted from the stream come back without fields: they are
        acknowledged here (nothing left to persist) and the read goes on."""
        for _ in range(1000):  # bounded: each round acknowledges what it skips
            entries = await self._read_once(start, block=block)
            if start == ">":
                return entries
            deleted = [e for e in entries if not e.fields]
            if not deleted:
                return entries
            await self._ack(deleted)
            self.stats.deleted_entries += len(deleted)
            log.warning("acknowledged %d entries deleted while pending", len(deleted))
            alive = [e for e in entries if e.fields]
            if alive:
                return alive
        return []

    async def _read_new(self) -> list[Entry]:
        """New entries: the batch read ahead while the store wrote the last one, if any,
        else a (blocking) read.

        With ``linger_ms``, a step that follows a partial batch first waits that long, so
        a steady trickle of orders is written in batches rather than one or two entries
        per step (each step costs a read, an upsert and an ack whatever its size: at
        2,000 holds/s that per-step cost was ~7 % of an API worker's CPU). A full batch
        means a backlog, which is read at once."""
        lingering = self.linger_s > 0 and 0 < self._last_read < self.batch
        if lingering and await self._sleep(self.linger_s):
            raise WriterStopped
        entries: list[Entry] = []
        if self._prefetch is not None:
            task, self._prefetch = self._prefetch, None
            entries = await task
        if not entries:
            entries = await self._read(">", block=True)
        elif self.linger_s > 0 and len(entries) < self.batch:
            entries += await self._read(">", block=False)  # what came during the linger
        self._last_read = len(entries)
        return entries

    def _read_ahead(self) -> None:
        """Start reading the next batch while the store writes this one (the read and
        decode of Redis replies overlap the store's I/O). What it reads is pending for
        this consumer like any read: a failure or stop leaves it for the backlog read."""
        if self._prefetch is None and self._streams:
            self._prefetch = asyncio.create_task(self._read(">", block=False))

    async def _drop_prefetch(self) -> None:
        task, self._prefetch = self._prefetch, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task

    async def _read_once(self, start: Literal[">", "0"], *, block: bool) -> list[Entry]:
        entries, missing = await read_group(
            self.redis,
            self.group,
            self.consumer,
            self._streams,
            start,
            count=self.batch,
            block_ms=self.block_ms if block and self.block_ms > 0 else None,
        )
        if missing:
            await self._regroup()
        return entries

    async def reclaim(self) -> list[Entry]:
        """XAUTOCLAIM entries idle > ``min_idle_ms`` (from dead consumers) to this one."""
        claimed: list[Entry] = []
        gc = time.monotonic() >= self._next_gc
        if gc:
            self._next_gc = time.monotonic() + GC_INTERVAL_S
        for stream in list(self._streams):
            got = await claim_idle(
                self.redis,
                stream,
                self.group,
                self.consumer,
                self.min_idle_ms,
                count=self.batch,
                enough=self.batch - len(claimed),
            )
            claimed += got.entries
            self._backlog = self._backlog or got.orphaned
            self.stats.deleted_entries += got.deleted
            if gc:
                await forget_idle_consumers(
                    self.redis,
                    stream,
                    self.group,
                    keep=self.consumer,
                    idle_ms=self.consumer_idle_gc_ms,
                )
            if len(claimed) >= self.batch:
                break
        if claimed:
            self.stats.reclaimed += len(claimed)
            log.info("reclaimed %d idle entries from other consumers", len(claimed))
        return claimed

    # -- persisting ------------------------------------------------------------------------

    async def process(self, entries: list[Entry], *, redelivered: bool) -> BatchReport:
        """Decode, persist (highest version per order), dead-letter poison, then ack.
        New entries (not ``redelivered``) let the next batch be read meanwhile."""
        report = BatchReport(read=len(entries))
        if not entries:
            return report
        self.stats.entries_read += len(entries)
        decoded, dead = triage(entries)
        if not redelivered:
            self._read_ahead()
        for start in range(0, len(decoded), self.batch):
            chunk = decoded[start : start + self.batch]
            orders = [order for _, order in chunk]
            written = await self._persister.persist(orders)
            report.written += written
            self.stats.orders_written += written
            self.stats.record_batch(len(chunk))
            self.commits.fire()
            await retire_persisted(self.redis, orders)
            report.acked += await self._ack([e for e, _ in chunk])
        if dead:
            counts = (
                await delivery_counts(self.redis, self.group, self.consumer, [e for e, _ in dead])
                if redelivered
                else {}
            )
            await dead_letter(self.redis, dead, counts, consumer=self.consumer)
            self.stats.dead_lettered += len(dead)
            report.dead_lettered = len(dead)
            report.acked += await self._ack([e for e, _ in dead])
        return report

    async def _ack(self, entries: Sequence[Entry]) -> int:
        acked = await ack(self.redis, self.group, entries)
        self.stats.acked += acked
        return acked

    # -- trimming --------------------------------------------------------------------------

    async def trim(self) -> int:
        """Trim every known log behind the slowest group. Returns entries removed."""
        removed = 0
        for stream in list(self._streams):
            removed += await self._trim_stream(stream)
        self.stats.trimmed += removed
        return removed

    async def trim_point(self, stream: str) -> str | None:
        """:func:`persistence.writer.trimming.trim_point` of ``stream``."""
        return await trim_point(self.redis, stream)

    async def _trim_stream(self, stream: str) -> int:
        return await trim_stream(self.redis, stream, approximate=self.trim_approximate)

    # -- observability ---------------------------------------------------------------------

    async def lag(self) -> WriterLag:
        """Unacknowledged entries and the age of the oldest, over the logs this writer
        follows (every armed event when it has not looked yet)."""
        known = list(self._streams.values()) or None
        return await measure_lag(self.redis, known, group=self.group)

    async def wait_persisted(
        self,
        order_id: str,
        version: int,
        timeout: float,  # noqa: ASYNC109 - the bounded wait is the contract of this call
    ) -> bool:
        """:func:`wait_persisted`, woken by this writer's own commits."""
        return await wait_persisted(self.store, order_id, version, timeout, commits=self.commits)
