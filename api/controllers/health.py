"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from api.deps import resources

HELD = Gauge("onsale_tickets_held", "Tickets held right now", ["event"])
SOLD = Gauge("onsale_tickets_sold", "Tickets sold", ["event"])
AVAILABLE = Gauge("onsale_tickets_available", "Tickets available", ["event"])
RELEASED = Gauge("onsale_holds_released", "Holds released by this process", ["path"])
WS_CLIENTS = Gauge("onsale_ws_clients", "WebSocket clients connected to this process")
WS_QUEUED = Gauge("onsale_ws_queued_frames", "Frames waiting in WebSocket outboxes")
WRITER_LAG = Gauge("onsale_writer_lag_entries", "Order log entries not yet persisted")
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
        if res.writer is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    checks["writerLag"] = msgspec.to_builtins(await res.writer.lag())
            except Exception as e:
                checks["writerLag"] = f"error: {type(e).__name__}"
        if res.hub is not None:
            checks["ws"] = res.hub.counts()
        if checks.get("scripts") == "not loaded":
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await res.engine.start()
                checks["scripts"] = "reloaded"
            except Exception as e:
                checks["scripts"] = f"error: {type(e).__name__}"
        ok = all(checks.get(k) in ("ok", "reloaded") for k in ("redis", "scripts", "store"))
        return Response(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    @get("/metrics", exclude_from_auth=True, include_in_schema=False)
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        res = resources(request)
        stocks = await res.engine.stocks(await res.engine.event_ids())
        for event_id, stock in stocks.items():
            HELD.labels(event_id).set(sum(c.held for c in stock.categories))
            SOLD.labels(event_id).set(sum(c.sold for c in stock.categories))
            AVAILABLE.labels(event_id).set(sum(c.available for c in stock.categories))
        RELEASED.labels("listener").set(res.expiry_stats.released_by_listener)
        RELEASED.labels("sweeper").set(res.expiry_stats.released_by_sweeper)
        if res.hub is not None:
            counts = res.hub.counts()
            WS_CLIENTS.set(counts["clients"])
            WS_QUEUED.set(counts["queuedFrames"])
        if res.writer is not None:
            WRITER_LAG.set((await res.writer.lag()).unacked)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
