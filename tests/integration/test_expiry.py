"""Expiry through the keyspace-notification listener, through the sweeper alone, and the
race between a confirm and the deadline."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis

from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.errors import OrderExpired
from engine.expiry import ExpiryListener, Sweeper
from engine.models import CategorySpec

pytestmark = pytest.mark.asyncio


async def _armed(redis: Redis, ttl_ms: int, total: int = 1000) -> Engine:
    engine = Engine(redis, EngineConfig(hold_ttl_ms=ttl_ms))
    await engine.start()
    await engine.arm_event("ex", [CategorySpec(id="a", name="A", price=5, total=total)])
    return engine


async def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def _available(engine: Engine) -> int:
    stock = await engine.stock("ex")
    assert stock is not None
    return stock.categories[0].available


async def test_listener_releases_expired_holds(redis: Redis) -> None:
    engine = await _armed(redis, ttl_ms=300)
    listener = ExpiryListener(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.wait_for(listener.ready.wait(), 5)
    orders = [(await engine.hold("ex", f"u{i}", [("a", 2)])).order for i in range(50)]
    assert await _available(engine) == 900
    assert await _wait_for(lambda: _same(engine, 1000), 5.0)
    stop.set()
    await task
    assert listener.stats.released_by_listener == 50
    for o in orders:
        got = await engine.get_order(o.id)
        assert got is not None and got.status == "EXPIRED"
    assert (await audit(engine)).clean


async def _same(engine: Engine, value: int) -> bool:
    return await _available(engine) == value


async def test_sweeper_alone_releases_expired_holds(redis: Redis) -> None:
    engine = await _armed(redis, ttl_ms=200)
    await redis.config_set("notify-keyspace-events", "")  # no fast path at all
    try:
        sweeper = Sweeper(engine, interval=0.1)
        stop = asyncio.Event()
        task = asyncio.create_task(sweeper.run(stop))
        for i in range(100):
            await engine.hold("ex", f"u{i}", [("a", 1)])
        assert await _wait_for(lambda: _same(engine, 1000), 5.0)
        stop.set()
        await task
        assert sweeper.stats.released_by_sweeper == 100
        assert (await audit(engine)).clean
    finally:
        await redis.config_set("notify-keyspace-events", "Ex")


async def test_listener_and_sweeper_together_release_each_hold_once(redis: Redis) -> None:
    engine = await _armed(redis, ttl_ms=150)
    listener = ExpiryListener(engine)
    sweeper = Sweeper(engine, interval=0.05)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(listener.run(stop)), asyncio.create_task(sweeper.run(stop))]
    await asyncio.wait_for(listener.ready.wait(), 5)
    for i in range(200):
        await engine.hold("ex", f"u{i}", [("a", 3)])
    assert await _wait_for(lambda: _same(engine, 1000), 5.0)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    assert listener.stats.released_by_listener + sweeper.stats.released_by_sweeper == 200
    assert await _available(engine) == 1000  # never returned twice
    assert (await audit(engine)).clean


async def test_confirm_racing_the_deadline_is_one_or_the_other(redis: Redis) -> None:
    engine = await _armed(redis, ttl_ms=40, total=10_000)
    listener = ExpiryListener(engine)
    sweeper = Sweeper(engine, interval=0.01)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(listener.run(stop)), asyncio.create_task(sweeper.run(stop))]
    await asyncio.wait_for(listener.ready.wait(), 5)
    outcomes = {"confirmed": 0, "expired": 0}

    async def race(i: int) -> None:
        order = (await engine.hold("ex", f"u{i}", [("a", 1)])).order
        await asyncio.sleep(0.035 + (i % 10) * 0.001)  # around the deadline
        try:
            await engine.confirm(order.id, order.user_id, payment_method="c", transaction_id="t")
            outcomes["confirmed"] += 1
        except OrderExpired:
            outcomes["expired"] += 1

    for start in range(0, 1000, 100):
        await asyncio.gather(*(race(i) for i in range(start, start + 100)))
    await asyncio.sleep(0.2)
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks)
    stock = await engine.stock("ex")
    assert stock is not None
    cat = stock.categories[0]
    assert outcomes["confirmed"] + outcomes["expired"] == 1000
    assert cat.sold == outcomes["confirmed"]
    assert cat.held == 0
    assert cat.available == 10_000 - outcomes["confirmed"]
    statuses = {o.status for o in await engine.orders_of_event("ex")}
    assert statuses <= {"CONFIRMED", "EXPIRED"}
    assert (await audit(engine)).clean
