"""Prometheus metrics: this process's counters, and the Redis-wide figures behind them and
behind /health/ready.

Three kinds of series (docs/metrics.md):

* **Counted here** (prometheus_client counters, a histogram and two gauges): holds by
  result and their latency (:func:`counted_hold`), confirms, cancels, rate-limit refusals
  by scope, and the counts that the engine's and the writer's stats objects keep
  (``engine.expiry.ExpiryStats``, ``persistence.writer.WriterStats``: plain integers, no
  prometheus there), copied into counters by difference (:class:`StatsExport`). With
  ``onsale serve --workers N`` they are kept in prometheus_client's multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR``, by default ``DATA_DIR/prometheus/<PORT>``, one per
  server; the files of dead processes removed when ``onsale serve`` starts), so any
  worker's scrape reports the sum over every worker.
* **Redis-wide**, which cost Redis reads in proportion to the number of events (every
  event's inventory, every order log's writer lag). :class:`RedisFigures` reads them at
  most once per :data:`MAX_AGE_S` (longer when a read itself takes long), whatever the
  number of requests: concurrent requests share one read, and a request never does more
  than a constant number of Redis calls of its own. Nothing is read while nobody asks.
  They are generated from the latest reading at each scrape (:class:`_RedisWide`), not
  kept in the registry: an event gone from Redis is gone from the series, and with N
  workers no figure is summed or duplicated per process.
* **The other processes'**: ``onsale writer`` and ``onsale sweeper`` serve their own
  ``/metrics`` on ``METRICS_PORT`` (:func:`serve_process_metrics`): the writer's counters,
  its lag and the dead letters; the sweeper's releases.

Series: the aggregates (``onsale_events_armed``, ``onsale_tickets_{held,sold,available}_all``)
are public; the per-event series (``onsale_tickets_{held,sold,available}{event=...}``),
which tell anyone how each event sells, need ``Authorization: Bearer <METRICS_TOKEN>`` when
``METRICS_TOKEN`` is set, and are not served in production without it.

This module is the import path (everything below is re-exported here); the code is split
by what it owns:

* ``api/metrics_series.py``: the definitions of the counted series, :func:`counted_hold`,
  and which stats field feeds which counter (:data:`EXPIRY_COUNTS`, :data:`WRITER_COUNTS`).
* ``api/metrics_export.py``: :class:`StatsExport`, the copy of stats objects into counters.
* ``api/metrics_figures.py``: the Redis-wide figures, their cached reads and their series.
* ``api/metrics_scrape.py``: the scrapes, multiprocess mode, the standalone ``/metrics``.
"""

from __future__ import annotations

from api.metrics_export import SYNC_INTERVAL_S, StatsExport, watched
from api.metrics_figures import (
    MAX_AGE_S,
    SLOW_READ_FACTOR,
    STOCK_CHUNK,
    Cached,
    PerEvent,
    Reading,
    RedisFigures,
    RedisWide,
    lag_families,
    totals,
)
from api.metrics_scrape import (
    CONTENT_TYPE,
    DEAD_LETTERS_TIMEOUT_S,
    LAG_WAIT_S,
    MULTIPROC_ENV,
    attach_process,
    detach_process,
    exposition,
    forget_dead_processes,
    multiprocess_dir,
    per_event_allowed,
    process_exposition,
    scrape,
    serve_process_metrics,
)
from api.metrics_series import (
    CANCELS,
    CONFIRMS,
    EXPIRY_COUNTS,
    EXPIRY_ERRORS,
    EXPIRY_NOTIFIED,
    EXPIRY_PRUNED,
    EXPIRY_SWEEPS,
    HOLD_BUCKETS,
    HOLD_RESULTS,
    HOLD_SECONDS,
    HOLDS,
    RATE_LIMIT_SCOPES,
    RATE_LIMITED,
    RELEASED,
    SOCKETIO_FORWARDED,
    WRITER_BATCHES,
    WRITER_COUNTS,
    WRITER_DEAD_LETTERED,
    WRITER_ERRORS,
    WRITER_READ,
    WRITER_RECLAIMED,
    WRITER_RETRIES,
    WRITER_WRITTEN,
    WS_CLIENTS,
    WS_QUEUED,
    counted_hold,
    hold_result,
)

__all__ = [
    "CANCELS",
    "CONFIRMS",
    "CONTENT_TYPE",
    "DEAD_LETTERS_TIMEOUT_S",
    "EXPIRY_COUNTS",
    "EXPIRY_ERRORS",
    "EXPIRY_NOTIFIED",
    "EXPIRY_PRUNED",
    "EXPIRY_SWEEPS",
    "HOLDS",
    "HOLD_BUCKETS",
    "HOLD_RESULTS",
    "HOLD_SECONDS",
    "LAG_WAIT_S",
    "MAX_AGE_S",
    "MULTIPROC_ENV",
    "RATE_LIMITED",
    "RATE_LIMIT_SCOPES",
    "RELEASED",
    "SLOW_READ_FACTOR",
    "SOCKETIO_FORWARDED",
    "STOCK_CHUNK",
    "SYNC_INTERVAL_S",
    "WRITER_BATCHES",
    "WRITER_COUNTS",
    "WRITER_DEAD_LETTERED",
    "WRITER_ERRORS",
    "WRITER_READ",
    "WRITER_RECLAIMED",
    "WRITER_RETRIES",
    "WRITER_WRITTEN",
    "WS_CLIENTS",
    "WS_QUEUED",
    "Cached",
    "PerEvent",
    "Reading",
    "RedisFigures",
    "RedisWide",
    "StatsExport",
    "attach_process",
    "counted_hold",
    "detach_process",
    "exposition",
    "forget_dead_processes",
    "hold_result",
    "lag_families",
    "multiprocess_dir",
    "per_event_allowed",
    "process_exposition",
    "scrape",
    "serve_process_metrics",
    "totals",
    "watched",
]
