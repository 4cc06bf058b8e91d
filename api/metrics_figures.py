"""The Redis-wide figures, which cost Redis reads in proportion to the number of events
(every event's inventory, every order log's writer lag), read at most once per
:data:`MAX_AGE_S` whatever the number of requests (:class:`Cached`, :class:`RedisFigures`),
and the series made from the latest reading at each scrape (:class:`RedisWide`, not kept in
any registry: an event gone from Redis is gone from the series, and with N workers no
figure is summed or duplicated per process). Also read by /health/ready (the writer's lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.core import Engine

log = logging.getLogger("api.metrics")

MAX_AGE_S = 2.0
"""Redis-wide figures are reused this long before a request reads them again."""
SLOW_READ_FACTOR = 4
"""...and at least this many times as long as the last read took (many events)."""
STOCK_CHUNK = 1000
"""Inventories read per pipelined round trip."""

T = TypeVar("T")


@dataclass(frozen=True)
class Reading(Generic[T]):
    """One read of a Redis-wide figure."""

    value: T
    taken_at: float  # time.monotonic()
    took_s: float


class Cached(Generic[T]):
    """A figure read by one task at a time, reused for :data:`MAX_AGE_S` (or
    :data:`SLOW_READ_FACTOR` times as long as its read took), read only when asked for."""

    def __init__(self, read: Callable[[], Awaitable[T]], name: str) -> None:
        self._read_value = read
        self.name = name
        self.latest: Reading[T] | None = None
        self.reads = 0
        self._reading: asyncio.Task[None] | None = None

    def _fresh(self) -> bool:
        latest = self.latest
        if latest is None:
            return False
        max_age = max(MAX_AGE_S, SLOW_READ_FACTOR * latest.took_s)
        return time.monotonic() - latest.taken_at < max_age

    async def get(self, wait_s: float) -> Reading[T] | None:
        """A fresh reading: the latest if recent enough, else that of a new read (shared
        with every concurrent caller), waited for at most ``wait_s``; past that the
        latest, however old (None before the first read)."""
        if self._fresh():
            return self.latest
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read(), name=f"metrics-{self.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reading), wait_s)
        return self.latest

    async def _read(self) -> None:
        start = time.monotonic()
        self.reads += 1
        try:
            value = await self._read_value()
        except Exception as e:
            log.warning("metrics: reading %s failed: %s", self.name, e)
            return
        now = time.monotonic()
        self.latest = Reading(value=value, taken_at=now, took_s=now - start)


PerEvent = dict[str, tuple[int, int, int]]
"""Event id -> (held, sold, available)."""


def totals(per_event: PerEvent) -> tuple[int, int, int]:
    held = sold = available = 0
    for h, s, a in per_event.values():
        held, sold, available = held + h, sold + s, available + a
    return held, sold, available


class RedisFigures:
    """The Redis-wide figures: every event's stock (for /metrics) and the writer's lag
    (for /metrics and /health/ready), each a :class:`Cached` read."""

    def __init__(self, engine: Engine, lag: Callable[[], Awaitable[Any]] | None) -> None:
        self.engine = engine
        self._lag = lag
        self.stock: Cached[PerEvent] = Cached(self._read_stock, "stock")
        self.lag: Cached[Any] | None = Cached(self._read_lag, "lag") if lag else None
        self.dead_letters: int | None = None  # the last XLEN of os:writer:dead (scrape)

    async def _read_stock(self) -> PerEvent:
        per_event: PerEvent = {}
        ids = await self.engine.event_ids()
        for i in range(0, len(ids), STOCK_CHUNK):
            stocks = await self.engine.stocks(ids[i : i + STOCK_CHUNK])
            for event_id, stock in stocks.items():
                per_event[event_id] = (
                    sum(c.held for c in stock.categories),
                    sum(c.sold for c in stock.categories),
                    sum(c.available for c in stock.categories),
                )
        return per_event

    async def _read_lag(self) -> Any:
        assert self._lag is not None
        return msgspec.to_builtins(await self._lag())

    async def writer_lag(self, wait_s: float) -> Any:
        """The writer's lag as builtins (``"pending"`` before the first read, ``"error:
        ..."`` when the last read failed), None without a writer."""
        if self.lag is None:
            return None
        reading = await self.lag.get(wait_s)
        if reading is None:
            return "pending" if self.lag.reads == 0 else "error: unavailable"
        return reading.value


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def lag_families(lag: Any, dead_letters: int | None = None) -> Iterator[Metric]:
    """The writer's lag (builtins of ``WriterLag``) as gauges; ``dead_letters`` when read
    apart, else the lag's own count."""
    if isinstance(lag, dict):
        yield _gauge(
            "onsale_writer_lag_entries",
            "Order log entries not yet persisted (pending + undelivered)",
            int(lag.get("pending", 0)) + int(lag.get("undelivered", 0)),
        )
        yield _gauge(
            "onsale_writer_oldest_age_seconds",
            "Age of the oldest order log entry not yet persisted (0 when caught up)",
            int(lag.get("oldest_age_ms", 0)) / 1000,
        )
        if dead_letters is None and "dead_letters" in lag:
            dead_letters = int(lag["dead_letters"])
    if dead_letters is not None:
        yield _gauge(
            "onsale_writer_dead_letters",
            "Entries in the writer's dead-letter stream (os:writer:dead)",
            dead_letters,
        )


class RedisWide(Collector):
    """The Redis-wide series of the latest readings: the aggregates, the writer's lag and
    dead letters, and with ``per_event`` the per-event series (events gone from Redis are
    gone: nothing is kept from one scrape to the next)."""

    def __init__(
        self, stock: Reading[PerEvent] | None, lag: Any, dead_letters: int | None, per_event: bool
    ) -> None:
        self.stock = stock
        self.lag = lag
        self.dead_letters = dead_letters
        self.per_event = per_event

    def collect(self) -> Iterator[Metric]:
        stock = self.stock
        if stock is not None:
            held, sold, available = totals(stock.value)
            yield _gauge("onsale_events_armed", "Events armed in Redis", len(stock.value))
            yield _gauge("onsale_tickets_held_all", "Tickets held right now, all events", held)
            yield _gauge("onsale_tickets_sold_all", "Tickets sold, all events", sold)
            yield _gauge("onsale_tickets_available_all", "Tickets available, all events", available)
            yield _gauge(
                "onsale_metrics_age_seconds",
                "Age of the Redis-wide figures served (read at most every 2 s)",
                round(time.monotonic() - stock.taken_at, 3),
            )
            yield _gauge(
                "onsale_metrics_read_seconds",
                "How long the last read of the Redis-wide figures took",
                round(stock.took_s, 4),
            )
        yield from lag_families(self.lag, self.dead_letters)
        if self.per_event:
            yield from self._per_event(stock.value if stock is not None else {})

    @staticmethod
    def _per_event(per_event: PerEvent) -> Iterator[Metric]:
        held = GaugeMetricFamily("onsale_tickets_held", "Tickets held right now", labels=["event"])
        sold = GaugeMetricFamily("onsale_tickets_sold", "Tickets sold", labels=["event"])
        available = GaugeMetricFamily(
            "onsale_tickets_available", "Tickets available", labels=["event"]
        )
        for event_id, (h, s, a) in sorted(per_event.items()):
            held.add_metric([event_id], h)
            sold.add_metric([event_id], s)
            available.add_metric([event_id], a)
        yield held
        yield sold
        yield available
