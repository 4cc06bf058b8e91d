"""The sweeper sleeps until the earliest deadline it knows of, not a fixed interval.

The interval here is 30 s and each test ends long before a second interval sweep could run
(``stats.sweeps`` stays 1), so a hold released in the test was released by a deadline
wake-up. No assertion is on a latency: waits are generous bounds on conditions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.expiry import ExpiryListener, Sweeper
from engine.models import CategorySpec
from engine.vocabulary import OrderStatus

pytestmark = pytest.mark.asyncio

INTERVAL_S = 30.0
BOUND_S = 15.0  # generous, and well inside one interval


async def _until(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = BOUND_S) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = predicate()
        if got if isinstance(got, bool) else await got:
            return True
        await asyncio.sleep(0.01)
    return False


async def _armed(redis: Redis, ttl_ms: int, **config: Any) -> Engine:
    engine = Engine(redis, EngineConfig(hold_ttl_ms=ttl_ms, **config))
    await engine.start()
    await engine.arm_event("wk", [CategorySpec(id="a", name="A", price=5, total=100)])
    return engine


async def _status(engine: Engine, order_id: str) -> str | None:
    order = await engine.get_order(order_id)
    return None if order is None else order.status


@pytest.fixture
async def quiet(redis: Redis) -> AsyncIterator[None]:
    """No keyspace notifications: nothing but the sweeper can release a hold."""
    await redis.config_set("notify-keyspace-events", "")
    yield
    await redis.config_set("notify-keyspace-events", "Ex")


async def _running(sweeper: Sweeper) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(sweeper.run(stop))
    assert await _until(lambda: sweeper.stats.sweeps == 1)  # the first interval sweep is done
    return stop, task


async def test_a_hold_due_before_the_interval_wakes_the_sweeper(redis: Redis, quiet: None) -> None:
    engine = await _armed(redis, ttl_ms=300)
    sweeper = Sweeper(engine, INTERVAL_S)
    stop, task = await _running(sweeper)
    order = (await engine.hold("wk", "u1", [("a", 2)])).order
    assert await _until(lambda: _is(engine, order.id, OrderStatus.EXPIRED))
    released = await engine.get_order(order.id)
    assert released is not None and released.updated_at >= order.expires_at
    assert sweeper.stats.sweeps == 1  # no interval sweep since: a deadline wake-up
    assert sweeper.stats.released_by_sweeper == 1
    assert sweeper.stats.extra["deadline_sweeps"] >= 1
    stop.set()
    await task
    assert sweeper.note not in engine.deadline_watchers
    assert (await audit(engine)).clean


async def _is(engine: Engine, order_id: str, status: str) -> bool:
    return await _status(engine, order_id) == status


async def test_a_nearer_deadline_replans_a_longer_wait(redis: Redis, quiet: None) -> None:
    engine = await _armed(redis, ttl_ms=60_000)
    far = (await engine.hold("wk", "far", [("a", 1)])).order  # the plan: 60 s away
    sweeper = Sweeper(engine, INTERVAL_S)
    stop, task = await _running(sweeper)
    # A nearer hold made elsewhere (another engine's TTL, as a waitlist offer has), told
    # to this process's sweeper as the engine tells it of its own holds and offers.
    short = Engine(redis, EngineConfig(hold_ttl_ms=300))
    await short.start()
    near = (await short.hold("wk", "near", [("a", 1)])).order
    engine.note_deadline("wk", near.expires_at, near.created_at)
    assert await _until(lambda: _is(engine, near.id, OrderStatus.EXPIRED))
    assert sweeper.stats.sweeps == 1
    assert await _status(engine, far.id) == OrderStatus.RESERVED
    stop.set()
    await task
    assert (await audit(engine)).clean


async def test_an_extended_hold_is_released_at_its_new_deadline(redis: Redis, quiet: None) -> None:
    engine = await _armed(
        redis, ttl_ms=400, hold_extension_ms=600, hold_extensions=1, hold_max_total_ms=60_000
    )
    sweeper = Sweeper(engine, INTERVAL_S)
    stop, task = await _running(sweeper)
    order = (await engine.hold("wk", "u1", [("a", 1)])).order
    extended = await engine.extend(order.id, "u1")
    assert extended.expires_at > order.expires_at
    assert await _until(lambda: _is(engine, order.id, OrderStatus.EXPIRED))
    released = await engine.get_order(order.id)
    assert released is not None and released.updated_at >= extended.expires_at
    assert sweeper.stats.sweeps == 1
    # The wake-up at the old deadline found nothing due and re-planned to the new one.
    assert sweeper.stats.extra["deadline_sweeps"] >= 2
    stop.set()
    await task
    assert (await audit(engine)).clean


async def test_the_next_deadline_is_learned_from_each_sweep(redis: Redis, quiet: None) -> None:
    """Holds made by another process (not told to this sweeper) are found by a sweep and
    then released one after another at their deadlines, each sweep planning the next."""
    other = await _armed(redis, ttl_ms=3_000)
    orders = [(await other.hold("wk", f"u{i}", [("a", 1)])).order for i in range(5)]
    engine = Engine(redis, EngineConfig())
    await engine.start()
    sweeper = Sweeper(engine, INTERVAL_S)
    stop, task = await _running(sweeper)  # its first sweep sees them, none due yet
    assert sweeper.stats.released_by_sweeper == 0
    for order in orders:
        assert await _until(lambda o=order: _is(engine, o.id, OrderStatus.EXPIRED))
    assert sweeper.stats.sweeps == 1
    assert sweeper.stats.released_by_sweeper == 5
    stop.set()
    await task
    assert (await audit(engine)).clean


class _Counting:
    """Counts the engine calls the sweeper makes (each one Redis round trip when idle)."""

    def __init__(self, engine: Engine) -> None:
        self.calls: dict[str, int] = {}
        for name in ("event_ids", "sweep", "prune_event"):
            self._wrap(engine, name)

    def _wrap(self, engine: Engine, name: str) -> None:
        inner = getattr(engine, name)

        async def counted(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return await inner(*args)

        setattr(engine, name, counted)

    def total(self) -> int:
        return sum(self.calls.values())


async def test_at_idle_it_makes_only_the_interval_sweeps_calls(redis: Redis, quiet: None) -> None:
    engine = await _armed(redis, ttl_ms=600_000)
    await engine.arm_event("wk2", [CategorySpec(id="a", name="A", price=5, total=10)])
    await engine.hold("wk", "u1", [("a", 1)])  # live holds, due in 10 minutes
    await engine.hold("wk2", "u2", [("a", 1)])
    counting = _Counting(engine)
    sweeper = Sweeper(engine, 0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(sweeper.run(stop))
    assert await _until(lambda: sweeper.stats.sweeps >= 1)
    first_calls, first_sweeps = dict(counting.calls), sweeper.stats.sweeps
    info_before = await redis.info("commandstats")
    assert await _until(lambda: sweeper.stats.sweeps >= first_sweeps + 10)
    info_after = await redis.info("commandstats")
    sweeps = sweeper.stats.sweeps - first_sweeps
    stop.set()
    await task
    # Per interval sweep: SMEMBERS, then one sweep_due and one prune_orders per event.
    made = {k: counting.calls[k] - first_calls.get(k, 0) for k in counting.calls}
    assert made == {"event_ids": sweeps, "sweep": 2 * sweeps, "prune_event": 2 * sweeps}
    assert "deadline_sweeps" not in sweeper.stats.extra  # never woken between intervals
    # And on the Redis side (the INFO calls read between two sweeps): only those.
    calls = {
        k: info_after[k]["calls"] - info_before.get(k, {"calls": 0})["calls"]
        for k in ("cmdstat_evalsha", "cmdstat_smembers")
        if k in info_after
    }
    assert (sweeps - 1) * 5 <= sum(calls.values()) <= (sweeps + 1) * 5
    assert (await audit(engine)).clean


async def test_the_listener_sweeps_the_notified_event_and_plans_the_sweeper(redis: Redis) -> None:
    """A notification releases every due hold of its event, in one sweep, and tells this
    process's sweeper of the next deadline."""
    engine = await _armed(redis, ttl_ms=200)
    listener = ExpiryListener(engine)
    planned: list[tuple[str, int, int]] = []
    engine.deadline_watchers.append(lambda e, d, n: planned.append((e, d, n)))
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.wait_for(listener.ready.wait(), 5)
    orders = [(await engine.hold("wk", f"u{i}", [("a", 1)])).order for i in range(20)]
    later = Engine(redis, EngineConfig(hold_ttl_ms=60_000))
    await later.start()
    kept = (await later.hold("wk", "kept", [("a", 1)])).order
    assert await _until(lambda: listener.stats.released_by_listener == 20)
    stop.set()
    await task
    for order in orders:
        assert await _status(engine, order.id) == OrderStatus.EXPIRED
    assert await _status(engine, kept.id) == OrderStatus.RESERVED
    assert ("wk", kept.expires_at) in {(e, d) for e, d, _ in planned}
    assert (await audit(engine)).clean
