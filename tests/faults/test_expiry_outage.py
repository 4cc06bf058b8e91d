"""Expiry listener down while 1,000 holds pass their deadline.

No listener and no sweeper run while the holds expire, so every keyspace notification
fires into the void (Redis pub/sub keeps nothing). Then two sweepers (every API process
runs one) and a listener start: every ticket must be back within one sweep interval
+ 2 s, exactly once, with exactly one release event per hold on the writer's log and on
the WebSocket feed; holds that are not due must keep their deadlines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.expiry import ExpiryListener, ExpiryStats, Sweeper
from engine.models import CategorySpec, Order

pytestmark = pytest.mark.slow

EVENT = "outage"
SHORT_HOLDS = 1000
LONG_HOLDS = 100
TOTAL_PER_CATEGORY = 1000
TTL_MS = 1500
SWEEP_INTERVAL_S = 1.0
FEED_MAXLEN = 100_000  # keep every feed entry so they can be counted


async def _stock(engine: Engine) -> dict[str, tuple[int, int, int, int]]:
    stock = await engine.stock(EVENT)
    assert stock is not None
    return {c.id: (c.available, c.held, c.sold, c.total) for c in stock.categories}


async def _timer_keys(redis: Redis) -> int:
    pattern = keys.timer(EVENT, "*")
    return len([k async for k in redis.scan_iter(match=pattern, count=1000)])


async def _poll(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


async def test_holds_expired_during_a_listener_outage_return_once_within_one_sweep(
    redis: Redis,
) -> None:
    short = Engine(redis, EngineConfig(hold_ttl_ms=TTL_MS, feed_maxlen=FEED_MAXLEN))
    long = Engine(redis, EngineConfig(hold_ttl_ms=600_000, feed_maxlen=FEED_MAXLEN))
    await short.start()
    await short.arm_event(
        EVENT,
        [
            CategorySpec(id="a", name="A", price=10, total=TOTAL_PER_CATEGORY),
            CategorySpec(id="b", name="B", price=20, total=TOTAL_PER_CATEGORY),
        ],
    )
    due = await asyncio.gather(
        *(short.hold(EVENT, f"u{i}", [("ab"[i % 2], 1)]) for i in range(SHORT_HOLDS))
    )
    kept = await asyncio.gather(*(long.hold(EVENT, f"k{i}", [("a", 1)]) for i in range(LONG_HOLDS)))
    due_ids = {h.order.id for h in due}
    kept_deadlines = {h.order.id: h.order.expires_at for h in kept}
    assert len(due_ids) == SHORT_HOLDS and all(h.created for h in due)
    last_deadline_ms = max(h.order.expires_at for h in due)

    # The outage: nobody listens while every short hold passes its deadline and Redis
    # expires its timer key (the notification is published to no one and is gone).
    now_ms = int((await redis.time())[0]) * 1000
    await asyncio.sleep((last_deadline_ms - now_ms) / 1000 + 0.5)
    assert await _poll(lambda: _same(_timer_keys(redis), LONG_HOLDS), 10)
    half = SHORT_HOLDS // 2
    assert await _stock(short) == {
        "a": (TOTAL_PER_CATEGORY - half - LONG_HOLDS, half + LONG_HOLDS, 0, TOTAL_PER_CATEGORY),
        "b": (TOTAL_PER_CATEGORY - half, half, 0, TOTAL_PER_CATEGORY),
    }, "nothing may be released while no listener or sweeper runs"

    # Recovery: two sweepers (two API processes) and a listener, all at once.
    stats = [ExpiryStats(), ExpiryStats(), ExpiryStats()]
    listener = ExpiryListener(short, stats[0])
    sweepers = [
        Sweeper(short, SWEEP_INTERVAL_S, stats[1]),
        Sweeper(long, SWEEP_INTERVAL_S, stats[2]),
    ]
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [asyncio.create_task(listener.run(stop))]
    tasks += [asyncio.create_task(s.run(stop)) for s in sweepers]
    try:

        async def all_back() -> bool:
            held = await _stock(short)
            return held["a"][1] == LONG_HOLDS and held["b"][1] == 0

        back = await _poll(all_back, SWEEP_INTERVAL_S + 2)
        elapsed = time.monotonic() - started
        assert back, f"not every ticket returned within {SWEEP_INTERVAL_S + 2}s"
        # Let them all run two more intervals: nothing may be released again.
        await asyncio.sleep(2 * SWEEP_INTERVAL_S + 0.2)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert elapsed <= SWEEP_INTERVAL_S + 2

    # Counters exact: every due ticket back once, the kept holds still held.
    assert await _stock(short) == {
        "a": (TOTAL_PER_CATEGORY - LONG_HOLDS, LONG_HOLDS, 0, TOTAL_PER_CATEGORY),
        "b": (TOTAL_PER_CATEGORY, 0, 0, TOTAL_PER_CATEGORY),
    }
    released = sum(s.released_by_listener + s.released_by_sweeper for s in stats)
    assert released == SHORT_HOLDS, [dataclasses.asdict(s) for s in stats]
    assert sum(s.errors for s in stats) == 0

    # One release event per hold on the writer's log and on the WebSocket feed.
    expired_in_log: Counter[str] = Counter()
    for _, fields in await redis.xrange(keys.order_log(EVENT)):
        order = msgspec.json.decode(fields[b"order"], type=Order)
        if order.status == "EXPIRED":
            expired_in_log[order.id] += 1
    assert set(expired_in_log) == due_ids
    assert set(expired_in_log.values()) == {1}
    expired_in_feed: Counter[str] = Counter()
    for _, fields in await redis.xrange(keys.feed(EVENT)):
        if fields[b"event"] == b"order:status-change":
            data = msgspec.json.decode(fields[b"data"])
            if data["nuevoEstado"] == "EXPIRED":
                expired_in_feed[data["orderId"]] += 1
    assert set(expired_in_feed) == due_ids
    assert set(expired_in_feed.values()) == {1}

    # Every order in its right state; the kept ones with their original deadlines.
    orders = {o.id: o for o in await short.orders_of_event(EVENT)}
    assert {orders[i].status for i in due_ids} == {"EXPIRED"}
    for order_id, deadline in kept_deadlines.items():
        assert orders[order_id].status == "RESERVED"
        assert orders[order_id].expires_at == deadline
    assert await redis.zcard(keys.deadlines(EVENT)) == LONG_HOLDS
    report = await audit(short)
    assert report.clean, report.violations
    print(
        f"listener outage: {SHORT_HOLDS} due holds back {elapsed:.2f}s after recovery started "
        f"(listener {stats[0].released_by_listener}, sweepers "
        f"{stats[1].released_by_sweeper}+{stats[2].released_by_sweeper})"
    )


async def _same(value: Any, expected: int) -> bool:
    return await value == expected
