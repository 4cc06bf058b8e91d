"""Prometheus metrics and the Redis-wide figures behind them and behind /health/ready.

Two kinds of figures:

* **This process's**, read from memory on every request: holds released, WebSocket
  clients, queued frames.
* **Redis-wide**, which cost Redis reads in proportion to the number of events (every
  event's inventory, every order log's writer lag). :class:`RedisFigures` reads them at
  most once per :data:`MAX_AGE_S` (longer when a read itself takes long), whatever the
  number of requests: concurrent requests share one read, and a request never does more
  than a constant number of Redis calls of its own. Nothing is read while nobody asks.

Series: the aggregates (``onsale_events_armed``, ``onsale_tickets_{held,sold,available}_all``)
are public; the per-event series (``onsale_tickets_{held,sold,available}{event=...}``),
which tell anyone how each event sells, need ``Authorization: Bearer <METRICS_TOKEN>`` when
``METRICS_TOKEN`` is set, and are not served in production without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.settings import Settings
from engine.core import Engine

log = logging.getLogger(__name__)

MAX_AGE_S = 2.0
"""Redis-wide figures are reused this long before a request reads them again."""
SLOW_READ_FACTOR = 4
"""...and at least this many times as long as the last read took (many events)."""
STOCK_CHUNK = 1000
"""Inventories read per pipelined round trip."""

RELEASED = Gauge("onsale_holds_released", "Holds released by this process", ["path"])
WS_CLIENTS = Gauge("onsale_ws_clients", "WebSocket clients connected to this process")
WS_QUEUED = Gauge("onsale_ws_queued_frames", "Frames waiting in WebSocket outboxes")
WRITER_LAG = Gauge("onsale_writer_lag_entries", "Order log entries not yet persisted")
EVENTS = Gauge("onsale_events_armed", "Events armed in Redis")
HELD_ALL = Gauge("onsale_tickets_held_all", "Tickets held right now, all events")
SOLD_ALL = Gauge("onsale_tickets_sold_all", "Tickets sold, all events")
AVAILABLE_ALL = Gauge("onsale_tickets_available_all", "Tickets available, all events")
FIGURES_AGE = Gauge(
    "onsale_metrics_age_seconds", "Age of the Redis-wide figures served (read at most every 2 s)"
)
FIGURES_READ = Gauge(
    "onsale_metrics_read_seconds", "How long the last read of the Redis-wide figures took"
)


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


class _PerEvent(Collector):
    """The per-event series of one stock reading (events gone from Redis are gone)."""

    def __init__(self, per_event: PerEvent) -> None:
        self.per_event = per_event

    def collect(self) -> Iterator[GaugeMetricFamily]:
        held = GaugeMetricFamily("onsale_tickets_held", "Tickets held right now", labels=["event"])
        sold = GaugeMetricFamily("onsale_tickets_sold", "Tickets sold", labels=["event"])
        available = GaugeMetricFamily(
            "onsale_tickets_available", "Tickets available", labels=["event"]
        )
        for event_id, (h, s, a) in sorted(self.per_event.items()):
            held.add_metric([event_id], h)
            sold.add_metric([event_id], s)
            available.add_metric([event_id], a)
        yield held
        yield sold
        yield available


def per_event_allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a scrape may see the per-event series: with ``METRICS_TOKEN`` set, only
    with ``Authorization: Bearer <METRICS_TOKEN>``; without it, outside production."""
    if not settings.metrics_token:
        return not settings.production
    scheme, _, credentials = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), settings.metrics_token.encode()
    )


async def exposition(figures: RedisFigures, *, per_event: bool, wait_s: float = 5.0) -> bytes:
    """The Prometheus text of this process's registry (the Redis-wide figures at most
    :data:`MAX_AGE_S` old, when Redis answers), with the per-event series when
    ``per_event``."""
    stock = await figures.stock.get(wait_s)
    if stock is not None:
        held, sold, available = totals(stock.value)
        EVENTS.set(len(stock.value))
        HELD_ALL.set(held)
        SOLD_ALL.set(sold)
        AVAILABLE_ALL.set(available)
        FIGURES_AGE.set(round(time.monotonic() - stock.taken_at, 3))
        FIGURES_READ.set(round(stock.took_s, 4))
    lag = await figures.writer_lag(wait_s)
    if isinstance(lag, dict):
        WRITER_LAG.set(int(lag.get("pending", 0)) + int(lag.get("undelivered", 0)))
    body = generate_latest(REGISTRY)
    if per_event:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_PerEvent(stock.value if stock is not None else {}))
        body += generate_latest(registry)
    return body
