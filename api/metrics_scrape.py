"""Scrapes and multiprocess mode: an API process's ``/metrics`` (:func:`scrape`: its
counted series, every worker's with ``onsale serve --workers N``, plus the Redis-wide
figures, per event only for a ``METRICS_TOKEN`` holder), what a process exports and when
(:func:`attach_process`, :func:`detach_process`), prometheus_client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, dead workers forgotten), and the ``/metrics`` that
``onsale writer`` and ``onsale sweeper`` serve on ``METRICS_PORT``
(:func:`serve_process_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from api.metrics_export import StatsExport
from api.metrics_figures import Cached, RedisFigures, RedisWide, lag_families
from api.metrics_series import EXPIRY_COUNTS, WRITER_COUNTS
from api.processes import process_alive
from api.settings import Settings

log = logging.getLogger("api.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4"
"""The text format every Prometheus reads (Litestar adds ``; charset=utf-8``; given
prometheus_client's CONTENT_TYPE_LATEST, which has it already, it was there twice)."""

# -- multiprocess mode ----------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The multiprocess directory when this process counts in multiprocess mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def forget_dead_processes(directory: str) -> list[int]:
    """``mark_process_dead`` for every process whose live gauges are still on disk but
    which is gone (a worker killed or restarted by uvicorn): its WebSocket clients and
    requests in progress no longer count. Counters of dead workers stay (they counted)."""
    dead = []
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and int(pid_text) not in dead and not process_alive(int(pid_text)):
            dead.append(int(pid_text))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return dead


def attach_process(res: Any) -> list[asyncio.Task[None]]:
    """What an API process exports: its expiry stats, its writer's (RUN_WRITER), its hub;
    in multiprocess mode the task copying them into the shared files every second."""
    export: StatsExport = res.export
    export.watch(res.expiry_stats, EXPIRY_COUNTS)
    if res.writer is not None:
        export.watch(res.writer.stats, WRITER_COUNTS)
    if res.hub is not None:
        export.watch_hub(res.hub)
    if multiprocess_dir() is None:
        return []
    return [asyncio.create_task(export.run(res.stop), name="metrics-sync")]


def detach_process(res: Any) -> None:
    """At shutdown: the last counts into the files; this worker's live gauges removed."""
    with contextlib.suppress(Exception):
        res.export.sync()
    directory = multiprocess_dir()
    if directory is not None:
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def process_exposition() -> bytes:
    """This process's counted series: in multiprocess mode those of every worker (the
    process and platform collectors are per process, so absent there), else the default
    registry (which has them)."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    forget_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


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
    """The Prometheus text of this process's counted series (every worker's in
    multiprocess mode) and of the Redis-wide figures (at most
    :data:`~api.metrics_figures.MAX_AGE_S` old, when Redis answers), with the per-event
    series when ``per_event``."""
    stock = await figures.stock.get(wait_s)
    lag = await figures.writer_lag(wait_s)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisWide(stock, lag, figures.dead_letters, per_event))
    return process_exposition() + generate_latest(registry)


DEAD_LETTERS_TIMEOUT_S = 0.8


async def scrape(res: Any, authorization: str | None) -> bytes:
    """An API process's /metrics (``res``: api.state.Resources)."""
    from persistence.writer.dead_letters import dead_letter_count

    per_event = per_event_allowed(res.settings, authorization)
    res.export.sync()
    with contextlib.suppress(Exception):  # one XLEN; Redis down keeps the last value
        async with asyncio.timeout(DEAD_LETTERS_TIMEOUT_S):
            res.figures.dead_letters = await dead_letter_count(res.redis)
    # Redis-wide figures are read at most once per 2 s, whatever the scrape rate.
    return await exposition(res.figures, per_event=per_event)


# -- `onsale writer` and `onsale sweeper`: /metrics on METRICS_PORT -------------------------

LAG_WAIT_S = 2.0


class _StandaloneCollector(Collector):
    """A standalone process's scrape, on prometheus_client's HTTP thread: its stats
    copied into its counters, the default registry (process and platform collectors
    included), then the writer's lag, read on the process's event loop."""

    def __init__(
        self,
        export: StatsExport,
        lag: Cached[Any] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.export = export
        self.lag = lag
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        self.export.sync()
        yield from REGISTRY.collect()
        if self.lag is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.lag.get(LAG_WAIT_S), self.loop)
        try:
            reading = future.result(LAG_WAIT_S + 1)
        except Exception as e:
            future.cancel()
            log.warning("metrics: the writer's lag was not read: %s", e)
            return
        if reading is not None:
            yield from lag_families(reading.value)


def serve_process_metrics(
    settings: Settings,
    export: StatsExport,
    lag: Callable[[], Awaitable[Any]] | None = None,
) -> Callable[[], None] | None:
    """With ``METRICS_PORT`` set, serve this process's /metrics there (HOST), on a thread,
    until the returned stop is called; ``lag`` (the writer's) becomes the lag and
    dead-letter gauges, read at most every :data:`~api.metrics_figures.MAX_AGE_S`. Without
    it, nothing."""
    if settings.metrics_port is None:
        return None
    from prometheus_client import start_http_server

    async def read_lag() -> Any:
        assert lag is not None
        return msgspec.to_builtins(await lag())

    cached = Cached(read_lag, "lag") if lag is not None else None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StandaloneCollector(export, cached, asyncio.get_running_loop()))
    try:
        server, thread = start_http_server(
            settings.metrics_port, addr=settings.host, registry=registry
        )
    except OSError as e:
        print(
            f"onsale: cannot listen on METRICS_PORT={settings.metrics_port}: {e}", file=sys.stderr
        )
        raise SystemExit(3) from None
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(2)

    return stop
