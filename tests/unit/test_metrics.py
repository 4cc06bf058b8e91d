"""api.metrics: who sees the per-event series, and that Redis-wide figures are read once
for any number of concurrent requests, at most every couple of seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

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


# -- counted series (issue 22) ------------------------------------------------------------


def _sample(name: str, **labels: str) -> float:
    got = REGISTRY.get_sample_value(name, labels)
    return got or 0.0


@pytest.mark.asyncio
async def test_a_hold_is_counted_by_result_and_timed() -> None:
    from api.services.errors import Conflict, Invalid, RateLimited
    from engine.errors import EventNotOnSale, SoldOut
    from engine.models import HoldResult

    outcomes: list[Any] = [
        True,
        False,
        RateLimited(3),
        SoldOut("none left"),
        Conflict("none left", code="sold_out"),
        EventNotOnSale("closed"),
        Invalid("bad key", code="bad_idempotency_key"),
        ConnectionError("redis gone"),
    ]

    async def hold(outcome: Any) -> HoldResult:
        if isinstance(outcome, Exception):
            raise outcome
        return HoldResult(order=None, created=outcome)  # type: ignore[arg-type]

    counted = metrics.counted_hold(hold)
    before = {r: _sample("onsale_holds_total", result=r) for r in metrics.HOLD_RESULTS}
    observed = _sample("onsale_hold_duration_seconds_count")
    for outcome in outcomes:
        with contextlib.suppress(Exception):
            await counted(outcome)
    after = {r: _sample("onsale_holds_total", result=r) - before[r] for r in before}
    assert after == {
        "created": 1,
        "replayed": 1,
        "rate_limited": 1,
        "sold_out": 2,
        "refused": 2,
        "error": 1,
    }
    assert _sample("onsale_hold_duration_seconds_count") - observed == len(outcomes)


def test_stats_are_copied_into_counters_by_difference() -> None:
    from engine.expiry import ExpiryStats

    stats = ExpiryStats()
    export = metrics.watched([(stats, metrics.EXPIRY_COUNTS)])
    base = _sample("onsale_holds_released_total", path="sweeper")
    stats.released_by_sweeper = 5
    export.sync()
    export.sync()  # nothing new: nothing added
    assert _sample("onsale_holds_released_total", path="sweeper") - base == 5
    stats.released_by_sweeper = 7
    export.sync()
    assert _sample("onsale_holds_released_total", path="sweeper") - base == 7


def test_the_live_gauges_of_a_dead_worker_are_forgotten(tmp_path: Any) -> None:
    import subprocess
    import sys

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(gone.stdout)
    for pid in (dead_pid, os.getpid()):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    assert metrics.forget_dead_processes(str(tmp_path)) == [dead_pid]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [f"counter_{dead_pid}.db", f"counter_{os.getpid()}.db", f"gauge_livesum_{os.getpid()}.db"]
    )  # a dead worker's counters still count


def test_every_rate_limit_scope_of_the_code_starts_at_zero() -> None:
    root = Path(__file__).resolve().parents[2] / "api"
    called = set()
    for path in root.rglob("*.py"):
        called |= set(re.findall(r'(?:\.hit|_limit)\(\s*"([^"]+)"', path.read_text()))
    assert called and called <= set(metrics.RATE_LIMIT_SCOPES), called - set(
        metrics.RATE_LIMIT_SCOPES
    )
