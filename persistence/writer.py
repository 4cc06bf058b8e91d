"""The order writer: every event's order-log stream in Redis -> the store.

Guarantees (see docs/persistence.md):

* **At least once.** Entries are read through the consumer group ``keys.WRITER_GROUP``
  and acknowledged (XACK) only after the store acknowledged the write. A writer that dies
  leaves its entries pending; it re-reads its own pending entries when it restarts under
  the same consumer name, and any writer reclaims entries idle longer than
  ``min_idle_ms`` from another consumer (XAUTOCLAIM).
* **Idempotent.** Orders are upserted by id and only by a version >= the stored one, so a
  replayed or reordered entry changes nothing. Together: exactly once in the store.
* **Poison never blocks.** An entry that cannot be decoded, that the store refuses on its
  own, or that was delivered more than ``max_deliveries`` times is copied to the
  dead-letter stream ``keys.DEAD_LETTER`` and acknowledged.
* **Store outages.** ``StoreUnavailable`` makes the writer back off exponentially (capped)
  and retry the same batch, without acknowledging and without re-reading it (so an
  outage does not count as a delivery).
* **Trimming.** A log stream is trimmed with ``XTRIM MINID`` to the oldest entry some
  group on it has not acknowledged (lowest pending id, else the entry after the group's
  last-delivered id), never with MAXLEN.

Run it with ``python -m persistence.writer --redis-url ... --data-dir ...`` (the
``onsale writer`` command wraps :func:`run_writer`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig

from engine import keys
from engine.models import Order, decode_order
from persistence.aio import AsyncStore
from persistence.errors import StoreError, StoreUnavailable
from persistence.store import Store, latest_versions, open_store

log = logging.getLogger(__name__)

ORDER_FIELD = "order"
DEAD_LETTER_PREFIX = "entry:"  # original fields are copied as "entry:<name>"
GC_INTERVAL_S = 60.0  # how often idle consumers are looked for


# -- stream ids ----------------------------------------------------------------------------


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_id(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def next_id(stream_id: str) -> str:
    """The smallest stream id greater than ``stream_id``."""
    ms, seq = parse_id(stream_id)
    return f"{ms}-{seq + 1}"


def id_ms(stream_id: str) -> int:
    """When Redis appended the entry (``*`` ids carry the server clock in ms)."""
    return parse_id(stream_id)[0]


# -- shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One stream entry; ``fields`` is empty when it was deleted while pending."""

    stream: str
    id: str
    fields: Mapping[bytes | str, bytes | str]

    def field(self, name: str) -> bytes | str | None:
        value = self.fields.get(name.encode())
        return self.fields.get(name) if value is None else value


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
    """Counters since start-up (exported by /metrics)."""

    entries_read: int = 0
    orders_written: int = 0
    batches: int = 0
    acked: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    deleted_entries: int = 0
    store_retries: int = 0
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


class WriterStopped(Exception):
    """Stop was requested while a batch waited for the store (its entries stay pending)."""


# -- lag -----------------------------------------------------------------------------------


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
        event_ids = [_text(m) for m in await redis.smembers(keys.EVENTS)]
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
        info = next((g for g in groups if _text(g["name"]) == group), None)
        last = _text(info["last-delivered-id"]) if info else "0-0"
        if info and int(info["pending"]):
            pending += int(info["pending"])
            summary = await redis.xpending(stream, group)
            if summary["min"] is not None:
                older(_text(summary["min"]))
        ahead = await redis.xrange(stream, min=next_id(last), max="+", count=1) or []
        if not ahead:
            continue
        older(_text(ahead[0][0]))
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


# -- waiting for durability ----------------------------------------------------------------


async def wait_persisted(
    store: AsyncStore,
    order_id: str,
    version: int,
    timeout: float,  # noqa: ASYNC109 - the bounded wait is the contract of this call
    *,
    poll_interval: float = 0.05,
    commits: CommitSignal | None = None,
) -> bool:
    """True once the store holds ``order_id`` at ``version`` or later, False after
    ``timeout`` seconds (``CONFIRM_DURABILITY=store``). Polls the store; a writer in this
    process (``commits``) wakes the poll as soon as it commits a batch."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        wake = commits.next_commit() if commits is not None else None
        stored = await store.get_order(order_id)
        if stored is not None and stored.version >= version:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        pause = min(remaining, poll_interval)
        if wake is None:
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), pause)


class CommitSignal:
    """Wakes every waiter when the writer commits a batch."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def next_commit(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()


# -- the writer ----------------------------------------------------------------------------


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
        max_deliveries: int = 5,
        reclaim_interval_ms: int = 5_000,
        trim_interval_ms: int = 1_000,
        refresh_interval_ms: int = 1_000,
        backoff_initial_ms: int = 50,
        backoff_max_ms: int = 5_000,
        trim_approximate: bool = True,
        consumer_idle_gc_ms: int = 3_600_000,
        group: str = keys.WRITER_GROUP,
    ) -> None:
        if batch < 1 or max_deliveries < 1 or min_idle_ms < 0:
            raise ValueError("batch and max_deliveries must be >= 1, min_idle_ms >= 0")
        self.redis = redis
        self.store = store
        self.consumer = consumer_name
        self.group = group
        self.batch = batch
        self.block_ms = block_ms
        self.linger_s = max(0, linger_ms) / 1000
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.reclaim_interval_s = reclaim_interval_ms / 1000
        self.trim_interval_s = trim_interval_ms / 1000
        self.refresh_interval_s = refresh_interval_ms / 1000
        self.backoff_initial_s = backoff_initial_ms / 1000
        self.backoff_max_s = max(backoff_max_ms, backoff_initial_ms) / 1000
        self.trim_approximate = trim_approximate
        self.consumer_idle_gc_ms = consumer_idle_gc_ms
        self.stats = WriterStats()
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
        members = {_text(m) for m in await self.redis.smembers(keys.EVENTS)}
        wanted = {keys.order_log(e): e for e in sorted(members)}
        if not self._scanned:
            # Logs of events forgotten while no writer ran may still hold entries.
            async for key in self.redis.scan_iter(match=keys.order_log("*"), count=1000):
                stream = _text(key)
                event_id = keys.event_of_log(stream)
                if event_id is not None:
                    wanted.setdefault(stream, event_id)
            self._scanned = True
        for stream, event_id in wanted.items():
            if stream not in self._streams:
                await self._ensure_group(stream)
                self._streams[stream] = event_id
        for stream in [s for s in self._streams if s not in wanted]:
            if await self._consumed(stream):
                await self._trim_stream(stream)
                del self._streams[stream]

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _consumed(self, stream: str) -> bool:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return True  # the stream is gone
        info = next((g for g in groups if _text(g["name"]) == self.group), None)
        if info is None or int(info["pending"]):
            return False
        last = _text(info["last-delivered-id"])
        return not await self.redis.xrange(stream, min=next_id(last), max="+", count=1)

    async def _regroup(self) -> None:
        """After NOGROUP (a log was deleted and recreated): recreate the missing groups."""
        for stream in self._streams:
            await self._ensure_group(stream)

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
        if isinstance(self.redis, Redis):
            groups: list[dict[Any, Any]] = [dict.fromkeys(self._streams, start)]
        else:
            # On Redis Cluster one XREADGROUP may only name keys of one slot.
            by_slot: dict[int, dict[Any, Any]] = {}
            for stream in self._streams:
                by_slot.setdefault(key_slot(stream.encode()), {})[stream] = start
            groups = list(by_slot.values())
        replies = await asyncio.gather(*(self._xreadgroup(g, block) for g in groups))
        return [
            Entry(_text(stream), _text(entry_id), fields or {})
            for reply in replies
            for stream, items in _stream_items(reply)
            for entry_id, fields in items
        ]

    async def _xreadgroup(self, streams: dict[Any, Any], block: bool) -> Any:
        try:
            return await self.redis.xreadgroup(
                self.group,
                self.consumer,
                streams,
                count=self.batch,
                block=self.block_ms if block and self.block_ms > 0 else None,
            )
        except ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            await self._regroup()
            return None

    async def reclaim(self) -> list[Entry]:
        """XAUTOCLAIM entries idle > ``min_idle_ms`` (from dead consumers) to this one."""
        claimed: list[Entry] = []
        gc = time.monotonic() >= self._next_gc
        if gc:
            self._next_gc = time.monotonic() + GC_INTERVAL_S
        for stream in list(self._streams):
            cursor = "0-0"
            for _ in range(100):  # bounded: at most 100 pages per stream per round
                try:
                    reply = await self.redis.xautoclaim(
                        stream,
                        self.group,
                        self.consumer,
                        self.min_idle_ms,
                        start_id=cursor,
                        count=self.batch,
                    )
                except ResponseError as e:
                    if "NOGROUP" not in str(e):
                        raise
                    await self._ensure_group(stream)
                    break
                # Redis 6.2 replies [cursor, entries]; 7.0 adds the ids it found deleted
                # (and already removed from the pending list) as a third element.
                cursor = _text(reply[0])
                for entry_id, fields in reply[1]:
                    if entry_id is None:
                        # 6.2: deleted while pending, now in our pending list without its
                        # id; the backlog read finds and acknowledges it.
                        self._backlog = True
                        continue
                    claimed.append(Entry(stream, _text(entry_id), fields or {}))
                if len(reply) > 2 and reply[2]:
                    self.stats.deleted_entries += len(reply[2])
                    log.warning(
                        "%d entries of %s were deleted while pending", len(reply[2]), stream
                    )
                if cursor == "0-0" or len(claimed) >= self.batch:
                    break
            if gc:
                await self._forget_idle_consumers(stream)
            if len(claimed) >= self.batch:
                break
        if claimed:
            self.stats.reclaimed += len(claimed)
            log.info("reclaimed %d idle entries from other consumers", len(claimed))
        return claimed

    async def _forget_idle_consumers(self, stream: str) -> None:
        """Drop consumers with nothing pending that have not been seen for a long time
        (every restart under a new name leaves one behind)."""
        try:
            consumers = await self.redis.xinfo_consumers(stream, self.group)
        except ResponseError:
            return
        for c in consumers:
            name = _text(c["name"])
            if (
                name != self.consumer
                and int(c["pending"]) == 0
                and int(c["idle"]) > self.consumer_idle_gc_ms
            ):
                await self.redis.xgroup_delconsumer(stream, self.group, name)

    async def _deliveries(self, entries: Sequence[Entry]) -> dict[tuple[str, str], int]:
        """Delivery counts (XPENDING) of entries now pending for this consumer."""
        counts: dict[tuple[str, str], int] = {}
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        for stream, ids in by_stream.items():
            wanted = set(ids)
            low = min(ids, key=parse_id)
            high = max(ids, key=parse_id)
            for _ in range(1000):  # bounded paging over our pending list
                rows = await self.redis.xpending_range(
                    stream,
                    self.group,
                    min=low,
                    max=high,
                    count=max(len(ids), 100),
                    consumername=self.consumer,
                )
                for row in rows:
                    entry_id = _text(row["message_id"])
                    if entry_id in wanted:
                        counts[(stream, entry_id)] = int(row["times_delivered"])
                if len(rows) < max(len(ids), 100) or len(counts) >= len(wanted):
                    break
                low = next_id(_text(rows[-1]["message_id"]))
        return counts

    # -- persisting ------------------------------------------------------------------------

    async def process(self, entries: list[Entry], *, redelivered: bool) -> BatchReport:
        """Decode, persist (highest version per order), dead-letter poison, then ack.
        New entries (not ``redelivered``) let the next batch be read meanwhile."""
        report = BatchReport(read=len(entries))
        if not entries:
            return report
        self.stats.entries_read += len(entries)
        counts = await self._deliveries(entries) if redelivered else {}
        dead: list[tuple[Entry, str]] = []
        decoded: list[tuple[Entry, Order]] = []
        for e in entries:
            deliveries = counts.get((e.stream, e.id), 1)
            raw = e.field(ORDER_FIELD)
            if deliveries > self.max_deliveries:
                dead.append((e, f"delivered {deliveries} times (max {self.max_deliveries})"))
            elif raw is None:
                dead.append((e, f"no {ORDER_FIELD!r} field"))
            else:
                try:
                    decoded.append((e, decode_order(raw)))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    dead.append((e, f"undecodable order: {exc}"))
        if not redelivered:
            self._read_ahead()
        for start in range(0, len(decoded), self.batch):
            chunk = decoded[start : start + self.batch]
            written, refused = await self._persist([order for _, order in chunk])
            report.written += written
            dead += [(e, refused[o.id]) for e, o in chunk if o.id in refused]
            done = [e for e, o in chunk if o.id not in refused]
            self.stats.orders_written += written
            self.stats.record_batch(len(chunk))
            self.commits.fire()
            report.acked += await self._ack(done)
        if dead:
            await self._dead_letter(dead, counts)
            report.dead_lettered = len(dead)
            report.acked += await self._ack([e for e, _ in dead])
        return report

    async def _persist(self, orders: list[Order]) -> tuple[int, dict[str, str]]:
        """Upsert one batch: (orders written, {order id: error} for orders the store
        refused on their own). Waits out ``StoreUnavailable``."""
        latest = latest_versions(orders)
        try:
            return await self._upsert_retrying(latest), {}
        except StoreError as e:  # not StoreUnavailable: that one is waited out
            log.warning("store refused a batch of %d (%s); retrying one by one", len(latest), e)
        written = 0
        refused: dict[str, str] = {}
        for order in latest:
            try:
                written += await self._upsert_retrying([order])
            except StoreError as e:
                refused[order.id] = f"store refused: {e}"
        return written, refused

    async def _upsert_retrying(self, orders: list[Order]) -> int:
        delay = self.backoff_initial_s
        while True:
            try:
                return await self.store.upsert_orders(orders)
            except StoreUnavailable as e:
                self.stats.store_retries += 1
                log.warning("store unavailable, retrying in %.2fs: %s", delay, e)
            if await self._sleep(delay):
                raise WriterStopped
            delay = min(delay * 2, self.backoff_max_s)

    async def _ack(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return 0
        by_stream: dict[str, list[str]] = {}
        for e in entries:
            by_stream.setdefault(e.stream, []).append(e.id)
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        acked = sum(int(n) for n in await pipe.execute())
        self.stats.acked += acked
        return acked

    async def _dead_letter(
        self, dead: Sequence[tuple[Entry, str]], counts: Mapping[tuple[str, str], int]
    ) -> None:
        """Copy poison entries to the dead-letter stream (before they are acked)."""
        pipe = self.redis.pipeline(transaction=False)
        for e, error in dead:
            fields: dict[Any, Any] = {
                "stream": e.stream,
                "id": e.id,
                "error": error[:1000],
                "deliveries": counts.get((e.stream, e.id), 1),
                "consumer": self.consumer,
            }
            for name, value in e.fields.items():
                fields[DEAD_LETTER_PREFIX + _text(name)] = value
            pipe.xadd(keys.DEAD_LETTER, fields)
            log.error("dead-lettered %s %s: %s", e.stream, e.id, error)
        await pipe.execute()
        self.stats.dead_lettered += len(dead)

    # -- trimming --------------------------------------------------------------------------

    async def trim(self) -> int:
        """Trim every known log behind the slowest group. Returns entries removed."""
        removed = 0
        for stream in list(self._streams):
            removed += await self._trim_stream(stream)
        self.stats.trimmed += removed
        return removed

    async def trim_point(self, stream: str) -> str | None:
        """The oldest id some group on ``stream`` has not acknowledged: its lowest pending
        id, or the id after its last-delivered one. None when the stream has no group."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            return None
        point: str | None = None
        for g in groups:
            candidate = next_id(_text(g["last-delivered-id"]))
            if int(g["pending"]):
                lowest = (await self.redis.xpending(stream, _text(g["name"])))["min"]
                if lowest is not None:  # None: acknowledged since XINFO was read
                    candidate = _text(lowest)
            if point is None or parse_id(candidate) < parse_id(point):
                point = candidate
        return point

    async def _trim_stream(self, stream: str) -> int:
        point = await self.trim_point(stream)
        if point is None:
            return 0
        return int(await self.redis.xtrim(stream, minid=point, approximate=self.trim_approximate))

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


def _stream_items(reply: Any) -> list[tuple[Any, Any]]:
    """XREADGROUP's reply as (stream, entries) pairs, whatever shape redis-py returned."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [
            (stream, items[0] if items and isinstance(items[0], list) else items)
            for stream, items in reply.items()
        ]
    return [(stream, items) for stream, items in reply]


# -- process entry point -------------------------------------------------------------------


async def run_writer(
    redis_url: str,
    store: Store,
    *,
    consumer_name: str,
    stop: asyncio.Event | None = None,
    store_workers: int = 4,
    **options: Any,
) -> WriterStats:
    """Run an :class:`OrderWriter` until ``stop`` (or SIGTERM/SIGINT); closes what it
    opened, including ``store``. Returns the final counters."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # As api.runtime.redis_client: redis-py 8's maintenance notifications (on by default)
    # make the pool hand out connections that died with a restarted Redis.
    redis = Redis.from_url(
        redis_url, maint_notifications_config=MaintNotificationsConfig(enabled=False)
    )
    astore = AsyncStore(store, max_workers=store_workers)
    writer = OrderWriter(redis, astore, consumer_name, **options)
    try:
        await writer.run(stop)
    finally:
        await astore.close()
        await redis.aclose()
    return writer.stats


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m persistence.writer",
        description="Persist the order streams of Redis into the store.",
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--mongodb-uri", default=None, help="default: the embedded store")
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    parser.add_argument("--consumer", default=None, help="default: <hostname>-<pid>")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--block-ms", type=int, default=1_000)
    parser.add_argument("--min-idle-ms", type=int, default=30_000)
    parser.add_argument("--reclaim-interval-ms", type=int, default=5_000)
    parser.add_argument("--max-deliveries", type=int, default=5)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store = open_store(args.mongodb_uri, args.data_dir)
    asyncio.run(
        run_writer(
            args.redis_url,
            store,
            consumer_name=args.consumer or default_consumer_name(),
            batch=args.batch,
            block_ms=args.block_ms,
            min_idle_ms=args.min_idle_ms,
            reclaim_interval_ms=args.reclaim_interval_ms,
            max_deliveries=args.max_deliveries,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
