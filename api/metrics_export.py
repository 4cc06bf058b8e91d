"""Counts kept by plain stats objects (``engine.expiry.ExpiryStats``,
``persistence.writer.WriterStats``: plain integers, no prometheus there) copied into this
process's counters by difference (:class:`StatsExport`), and the WebSocket gauges set from
the hub. The counters themselves are :mod:`api.metrics_series`; when the copy runs (each
scrape, and every :data:`SYNC_INTERVAL_S` in multiprocess mode) is :mod:`api.metrics_scrape`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import Any

from api.metrics_series import WS_CLIENTS, WS_QUEUED

log = logging.getLogger("api.metrics")

SYNC_INTERVAL_S = 1.0
"""In multiprocess mode, how often a worker copies its stats into its counters (any
worker's scrape reads every worker's files, so none may wait for its own scrape)."""


class StatsExport:
    """Copies counts kept by plain stats objects into this process's counters (by
    difference, so a counter only grows) and sets the WebSocket gauges from the hub.

    :meth:`sync` runs before each scrape of this process and, in multiprocess mode, every
    :data:`SYNC_INTERVAL_S` (:meth:`run`), since a scrape reaches one worker only."""

    def __init__(self) -> None:
        self._sources: list[tuple[object, dict[str, Any], dict[str, int]]] = []
        self._hub: Any = None
        self._lock = threading.Lock()  # writer/sweeper: scrapes come on the HTTP thread

    def watch(self, stats: object, counters: dict[str, Any]) -> None:
        self._sources.append((stats, counters, dict.fromkeys(counters, 0)))

    def watch_hub(self, hub: Any) -> None:
        self._hub = hub

    def sync(self) -> None:
        with self._lock:
            for stats, counters, seen in self._sources:
                for name, counter in counters.items():
                    value = int(getattr(stats, name))
                    if value > seen[name]:
                        counter.inc(value - seen[name])
                        seen[name] = value
            if self._hub is not None:
                counts = self._hub.counts()
                WS_CLIENTS.set(counts["clients"])
                WS_QUEUED.set(counts["queuedFrames"])

    async def run(self, stop: asyncio.Event, interval: float = SYNC_INTERVAL_S) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception as e:  # a metrics failure never stops the process
                log.warning("metrics: syncing the stats failed: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


def watched(pairs: Iterable[tuple[object, dict[str, Any]]]) -> StatsExport:
    """A :class:`StatsExport` of these (stats object, counters) pairs."""
    export = StatsExport()
    for stats, counters in pairs:
        export.watch(stats, counters)
    return export
