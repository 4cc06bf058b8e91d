"""The series this process counts, defined once (prometheus_client counters, a histogram
and two gauges), and the one wrapper on the hot path.

Holds by result and their latency (:func:`counted_hold`), confirms, cancels, rate-limit
refusals by scope; the counters fed by the engine's and the writer's stats objects
(:data:`EXPIRY_COUNTS`, :data:`WRITER_COUNTS`, copied by :mod:`api.metrics_export`) and the
WebSocket gauges. Defining them all here, in one module, keeps their registration order (and
so the order of the scrape) whatever imports them first. Import them from :mod:`api.metrics`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from prometheus_client import Counter, Gauge, Histogram

from api.services.errors import RateLimited, ServiceError, Unavailable
from engine.errors import EngineError
from engine.models import HoldResult

# -- counted in this process ----------------------------------------------------------------

HOLD_RESULTS = ("created", "replayed", "sold_out", "rate_limited", "refused", "error")
HOLDS = Counter(
    "onsale_holds",
    "Hold requests answered, by result: created, replayed (same Idempotency-Key), sold_out, "
    "rate_limited, refused (any other rule), error (Redis, timeouts, unexpected)",
    ["result"],
)
_HOLD = {result: HOLDS.labels(result) for result in HOLD_RESULTS}
HOLD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
HOLD_SECONDS = Histogram(
    "onsale_hold_duration_seconds",
    "Time to answer a hold in the order service (rate limit and engine), any result",
    buckets=HOLD_BUCKETS,
)
CONFIRMS = Counter("onsale_confirms", "Orders confirmed (sold); a retried confirm counts once")
CANCELS = Counter("onsale_cancels", "Held orders cancelled by their buyer or an ADMIN")
RATE_LIMITED = Counter(
    "onsale_rate_limited", "Requests refused by a rate limit, by scope", ["scope"]
)
RATE_LIMIT_SCOPES = ("orders", "register", "login", "login-email", "events", "queue_hb")
"""The scopes ``api.security.RateLimiter.hit`` is called with, shown at 0 from the start
(a series that appears only at its first refusal hides that first rise from ``rate()``)."""
for _scope in RATE_LIMIT_SCOPES:
    RATE_LIMITED.labels(_scope)
RELEASED = Counter(
    "onsale_holds_released", "Expired holds released, by path (listener, sweeper)", ["path"]
)
EXPIRY_NOTIFIED = Counter(
    "onsale_expiry_notifications", "Timer-key expiry notifications the listener received"
)
EXPIRY_SWEEPS = Counter("onsale_expiry_sweeps", "Interval sweeps of every armed event")
EXPIRY_PRUNED = Counter("onsale_expiry_pruned", "Finished orders pruned from Redis by the sweeper")
EXPIRY_ERRORS = Counter("onsale_expiry_errors", "Listener and sweeper failures (Redis errors)")
WRITER_READ = Counter("onsale_writer_entries_read", "Order log entries read by the writer")
WRITER_WRITTEN = Counter("onsale_writer_orders_written", "Orders written to the store")
WRITER_BATCHES = Counter("onsale_writer_batches", "Store writes (batches) of the writer")
WRITER_RECLAIMED = Counter(
    "onsale_writer_reclaimed", "Entries reclaimed from another writer that stopped answering"
)
WRITER_DEAD_LETTERED = Counter(
    "onsale_writer_dead_lettered", "Entries moved to the dead-letter stream (os:writer:dead)"
)
WRITER_RETRIES = Counter("onsale_writer_store_retries", "Store writes retried by the writer")
WRITER_ERRORS = Counter("onsale_writer_errors", "Writer loop failures")
WS_CLIENTS = Gauge("onsale_ws_clients", "WebSocket clients connected", multiprocess_mode="livesum")
WS_QUEUED = Gauge(
    "onsale_ws_queued_frames", "Frames waiting in WebSocket outboxes", multiprocess_mode="livesum"
)
SOCKETIO_FORWARDED = Counter(
    "onsale_socketio_forwarded",
    "Socket.IO requests for another worker's Engine.IO session (--workers N), by transport "
    "(polling: a GET or POST; websocket: an upgrade) and result (forwarded to the owner; "
    "owner_gone: no such worker, answered as an unknown session)",
    ["transport", "result"],
)
for _transport in ("polling", "websocket"):
    for _result in ("forwarded", "owner_gone"):
        SOCKETIO_FORWARDED.labels(_transport, _result)

EXPIRY_COUNTS: dict[str, Any] = {
    "released_by_listener": RELEASED.labels("listener"),
    "released_by_sweeper": RELEASED.labels("sweeper"),
    "notified": EXPIRY_NOTIFIED,
    "sweeps": EXPIRY_SWEEPS,
    "pruned": EXPIRY_PRUNED,
    "errors": EXPIRY_ERRORS,
}
"""``ExpiryStats`` field -> the counter it feeds."""
WRITER_COUNTS: dict[str, Any] = {
    "entries_read": WRITER_READ,
    "orders_written": WRITER_WRITTEN,
    "batches": WRITER_BATCHES,
    "reclaimed": WRITER_RECLAIMED,
    "dead_lettered": WRITER_DEAD_LETTERED,
    "store_retries": WRITER_RETRIES,
    "errors": WRITER_ERRORS,
}
"""``WriterStats`` field -> the counter it feeds."""


def hold_result(error: BaseException) -> str:
    """The ``result`` label of a hold that raised ``error``."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if getattr(error, "code", None) == "sold_out":
        return "sold_out"
    if isinstance(error, Unavailable):
        return "error"
    if isinstance(error, EngineError | ServiceError):
        return "refused"
    return "error"


P = ParamSpec("P")


def counted_hold(
    hold: Callable[P, Awaitable[HoldResult]],
) -> Callable[P, Awaitable[HoldResult]]:
    """Count a hold coroutine's answers by result and observe its latency: one counter
    ``inc`` and one histogram ``observe``, ~2 us a hold (docs/metrics.md)."""

    @functools.wraps(hold)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> HoldResult:
        start = time.perf_counter()
        try:
            result = await hold(*args, **kwargs)
        except Exception as e:
            HOLD_SECONDS.observe(time.perf_counter() - start)
            _HOLD[hold_result(e)].inc()
            raise
        HOLD_SECONDS.observe(time.perf_counter() - start)
        _HOLD["created" if result.created else "replayed"].inc()
        return result

    return counted
