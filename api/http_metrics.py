"""Per-request Prometheus metrics, at the cost of a few dictionary lookups.

The series are those Litestar's ``PrometheusConfig(app_name="onsale", prefix="onsale",
group_path=True)`` middleware exported, with the same names, labels and documentation:

* ``onsale_requests_total{method, path, status_code, app_name}``
* ``onsale_request_duration_seconds{...}`` (histogram, prometheus_client's default buckets)
* ``onsale_requests_in_progress{method, path, status_code, app_name}``
* ``onsale_requests_error_total{...}`` (status >= 500)

``path`` is the route's template (``/api/orders/{order_id}``), so the series stay few.

Why not Litestar's middleware: per request it built a ``Request``, two label dicts, a
``functools.wraps`` send wrapper, ran ``AbstractMiddleware``'s exclusion regex and did four
``.labels()`` look-ups (each a tuple of ``str()`` values under a lock): ~10 % of the CPU of
a bare request here (py-spy, docs/performance.md). Its options offer no cheaper mode. This
middleware is a plain ASGI callable in the same place (Litestar applies it per route,
after routing, so the template is known); it keeps each label set's children once, so a
request costs one dict look-up, two ``inc``, one ``observe`` and one ``dec``.

Excluded paths (``/metrics``, ``/health``, ``/ws``) are matched as prefixes.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

LABELS = ["method", "path", "status_code", "app_name"]
APP_NAME = "onsale"
EXCLUDED = ("/metrics", "/health", "/ws")

REQUESTS = Counter("onsale_requests_total", "Total requests", LABELS)
DURATION = Histogram("onsale_request_duration_seconds", "Request duration, in seconds", LABELS)
IN_PROGRESS = Gauge(
    "onsale_requests_in_progress",
    "Total requests currently in progress",
    LABELS,
    multiprocess_mode="livesum",
)
ERRORS = Counter("onsale_requests_error_total", "Total errors in requests", LABELS)

_in_progress: dict[tuple[str, str], Any] = {}
_done: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}


def _progress(method: str, path: str) -> Any:
    key = (method, path)
    child = _in_progress.get(key)
    if child is None:
        # Litestar's middleware labelled the in-progress gauge with status_code 200.
        child = _in_progress[key] = IN_PROGRESS.labels(method, path, "200", APP_NAME)
    return child


def _finished(method: str, path: str, status: int) -> tuple[Any, Any, Any]:
    key = (method, path, status)
    children = _done.get(key)
    if children is None:
        values = (method, path, str(status), APP_NAME)
        errors = ERRORS.labels(*values) if status >= 500 else None
        children = _done[key] = (REQUESTS.labels(*values), DURATION.labels(*values), errors)
    return children


def in_progress(method: str, template: str) -> Any:
    """The in-progress gauge's child of a route (``inc`` / ``dec`` around a request)."""
    return _progress(method, template)


def finished(method: str, template: str, status: int, duration: float) -> None:
    """Count one answered request of a route: total, duration and, for 5xx, errors."""
    count, histogram, errors = _finished(method, template, status)
    if errors is not None:
        errors.inc()
    count.inc()
    histogram.observe(duration)


def request_metrics(app: Any) -> Any:
    """Litestar middleware (``middleware=[request_metrics]``)."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if scope["type"] != "http" or path.startswith(EXCLUDED):
            await app(scope, receive, send)
            return
        method = scope["method"]
        template = scope.get("path_template", path)
        progress = _progress(method, template)
        status = 200
        start = time.perf_counter()
        duration = 0.0

        async def counting_send(message: Any) -> None:
            nonlocal status, duration
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                duration = time.perf_counter() - start
            await send(message)

        progress.inc()
        try:
            await app(scope, receive, counting_send)
        finally:
            progress.dec()
            finished(method, template, status, duration)

    return middleware
