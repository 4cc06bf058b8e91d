"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get

from api.deps import resources
from api.metrics import CONTENT_TYPE, scrape
from persistence.writer.dead_letters import dead_letter_count

# Each readiness check answers within this, or counts as failed: a stalled Redis or store
# makes /health/ready a prompt 503, never a hung probe (probes often give up after 1 s).
CHECK_TIMEOUT_S = 0.8


class HealthController(Controller):
    tags = ["operations"]

    @get("/health/live", exclude_from_auth=True)
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/health/ready", exclude_from_auth=True)
    async def ready(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        res = resources(request)
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await res.redis.ping()
                checks["redis"] = "ok"
                checks["scripts"] = "ok" if await res.engine.scripts.loaded() else "not loaded"
        except Exception as e:
            checks["redis"] = f"error: {type(e).__name__}"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await res.store.ping()
            checks["store"] = "ok"
        except Exception as e:
            checks["store"] = f"error: {type(e).__name__}"
        if res.writer is not None and checks.get("redis") != "ok":
            checks["writerLag"] = "skipped"  # as deadLetters below: no second bound to wait
        elif res.writer is not None:
            # A read per event's log: shared with /metrics, at most once per 2 s (api.metrics).
            checks["writerLag"] = await res.figures.writer_lag(wait_s=CHECK_TIMEOUT_S)
        if res.hub is not None:
            checks["ws"] = res.hub.counts()
        if checks.get("scripts") == "not loaded":
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await res.engine.start()
                checks["scripts"] = "reloaded"
            except Exception as e:
                checks["scripts"] = f"error: {type(e).__name__}"
        # Dead letters are data for an operator (`onsale writer --replay-dead`), not a
        # reason to take this process out of the load balancer: 200, status "degraded".
        # Not asked of a Redis that just failed its check: a stalled one would make the
        # probe wait out a second bound.
        if checks.get("redis") != "ok":
            checks["deadLetters"] = "skipped"
        else:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    checks["deadLetters"] = await dead_letter_count(res.redis)
            except Exception as e:
                checks["deadLetters"] = f"error: {type(e).__name__}"
        ok = all(checks.get(k) in ("ok", "reloaded") for k in ("redis", "scripts", "store"))
        degraded = ["deadLetters"] if checks.get("deadLetters", 0) not in (0, None) else []
        status = "unavailable" if not ok else "degraded" if degraded else "ok"
        return Response(
            {"status": status, "checks": checks, "degraded": degraded},
            status_code=200 if ok else 503,
        )

    @get("/metrics", exclude_from_auth=True, include_in_schema=False)
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        # Every worker's counters (multiprocess mode), the Redis-wide figures read at most
        # once per 2 s whatever the scrape rate, per-event series by METRICS_TOKEN.
        body = await scrape(resources(request), request.headers.get("authorization"))
        return Response(body, media_type=CONTENT_TYPE)
