"""api.metrics: who sees the per-event series, and that Redis-wide figures are read once
for any number of concurrent requests, at most every couple of seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api import metrics
from api.settings import load_settings
from engine.models import CategoryStock, EventStock

TOKEN = "metrics-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("env", "authorization", "allowed"),
    [
        ({}, None, True),  # development, no token: as before
        ({"APP_ENV": "production", "JWT_SECRET": "x" * 40}, None, False),
        ({"METRICS_TOKEN": TOKEN}, None, False),
        ({"METRICS_TOKEN": TOKEN}, "Bearer wrong-token-0123456789", False),
        ({"METRICS_TOKEN": TOKEN}, f"Basic {TOKEN}", False),
        ({"METRICS_TOKEN": TOKEN}, f"Bearer {TOKEN}", True),
        ({"METRICS_TOKEN": TOKEN}, f"bearer  {TOKEN} ", True),
        ({"APP_ENV": "production", "JWT_SECRET": "x" * 40, "METRICS_TOKEN": TOKEN}, None, False),
        (
            {"APP_ENV": "production", "JWT_SECRET": "x" * 40, "METRICS_TOKEN": TOKEN},
            f"Bearer {TOKEN}",
            True,
        ),
    ],
)
def test_per_event_series_need_the_token_when_it_is_set(
    env: dict[str, str], authorization: str | None, allowed: bool
) -> None:
    settings = load_settings(env)
    assert metrics.per_event_allowed(settings, authorization) is allowed


def test_a_short_metrics_token_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        load_settings({"METRICS_TOKEN": "short"})


class CountingEngine:
    def __init__(self, n: int) -> None:
        self.n = n
        self.inventory_reads = 0

    async def event_ids(self) -> list[str]:
        await asyncio.sleep(0.01)
        return [f"e{i}" for i in range(self.n)]

    async def stocks(self, ids: list[str]) -> dict[str, EventStock]:
        self.inventory_reads += len(ids)
        await asyncio.sleep(0.01)
        cat = CategoryStock(id="c", name="c", price=1.0, total=10, available=6, held=3, sold=1)
        return {
            i: EventStock(
                event_id=i,
                state="open",
                low_stock_threshold=0,
                max_per_order=10,
                categories=[cat],
            )
            for i in ids
        }


@pytest.mark.asyncio
async def test_concurrent_requests_share_one_read_and_reuse_it() -> None:
    engine: Any = CountingEngine(2500)
    lag_reads = 0

    async def lag() -> dict[str, int]:
        nonlocal lag_reads
        lag_reads += 1
        return {"pending": 2, "undelivered": 3}

    figures = metrics.RedisFigures(engine, lag)
    got = await asyncio.gather(*(figures.stock.get(wait_s=5) for _ in range(50)))
    assert figures.stock.reads == 1 and engine.inventory_reads == 2500
    assert all(g is got[0] for g in got)
    assert got[0] is not None and metrics.totals(got[0].value) == (7500, 2500, 15000)
    assert await figures.writer_lag(5) == {"pending": 2, "undelivered": 3}
    for _ in range(50):
        await figures.stock.get(wait_s=5)
        await figures.writer_lag(5)
    assert figures.stock.reads == 1 and lag_reads == 1  # within MAX_AGE_S: no new read
    body = (await metrics.exposition(figures, per_event=False)).decode()
    assert "onsale_tickets_held_all 7500.0" in body
    assert "onsale_writer_lag_entries 5.0" in body
    assert 'onsale_tickets_held{event="e1"}' not in body
    body = (await metrics.exposition(figures, per_event=True)).decode()
    assert 'onsale_tickets_held{event="e1"} 3.0' in body
    assert engine.inventory_reads == 2500


@pytest.mark.asyncio
async def test_the_readiness_lag_does_not_read_every_inventory() -> None:
    engine: Any = CountingEngine(10)

    async def lag() -> dict[str, int]:
        return {"pending": 0, "undelivered": 0}

    figures = metrics.RedisFigures(engine, lag)
    assert await figures.writer_lag(5) == {"pending": 0, "undelivered": 0}
    assert engine.inventory_reads == 0
    assert await metrics.RedisFigures(engine, None).writer_lag(5) is None
