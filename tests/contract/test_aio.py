"""AsyncStore: the port as coroutines, on a bounded thread pool, over every adapter."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from persistence.aio import AsyncStore
from persistence.errors import DuplicateEmail, StoreError, StoreUnavailable
from persistence.store import Store
from tests.contract import factories as f
from tests.contract.conftest import Backend


async def test_every_method_reaches_the_adapter(backend: Backend) -> None:
    store = AsyncStore(backend.open(), max_workers=2)
    await store.ping()
    ana = f.user("ana@example.com", role="ORGANIZADOR")
    await store.create_user(ana)
    with pytest.raises(DuplicateEmail):
        await store.create_user(f.user("ANA@example.com"))
    assert await store.get_user(ana.id) == ana
    assert await store.get_user_by_email("Ana@Example.com") == ana
    assert await store.count_users_by_role() == {"ORGANIZADOR": 1}

    bilbao = f.event(id="e1", location="Bilbao", date=f.T0)
    await store.create_event(bilbao)
    await store.create_event(f.event(id="e2", location="Madrid", date=f.T0 + f.DAY))
    assert await store.get_event("e1") == bilbao
    assert await store.list_events(1, 10, location="madrid") == (
        [await store.get_event("e2")],
        1,
    )
    assert (await store.list_events(1, 10, date_to_ms=f.T0 + 1))[1] == 1
    assert [e.id for e in (await store.list_events(1, 10, ids=["e2"]))[0]] == ["e2"]
    assert [e.id for e in await store.all_events()] == ["e1", "e2"]
    bilbao.name = "renamed"
    assert await store.replace_event(bilbao) is True
    assert await store.count_events() == 2
    assert await store.delete_event("e2") is True

    held = f.order(event_id="e1", user_id=ana.id, tickets=[("vip", 2, 10.0)])
    sold = f.at_version(held, 2, "CONFIRMED")
    assert await store.upsert_orders([held]) == 1
    assert await store.upsert_orders([sold]) == 1
    assert await store.get_order(held.id) == sold
    assert await store.list_user_orders(ana.id, 1, 10) == ([sold], 1)
    assert await store.list_orders(1, 10, status="RESERVED") == ([], 0)
    assert await store.list_orders(1, 10, event_id="e1") == ([sold], 1)
    assert (await store.order_stats()).tickets_sold == 2
    assert (await store.event_sales("e1"))["vip"].revenue == 20.0
    assert await store.sold_counts("e1") == {"vip": 2}
    assert await store.delete_user(ana.id) is True
    await store.close()


class SlowStore:
    """Just enough of a Store to observe the pool: counts calls running at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.threads: set[str] = set()
        self.closed = 0
        self._lock = threading.Lock()

    def get_order(self, order_id: str) -> None:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        time.sleep(0.02)
        with self._lock:
            self.running -= 1

    def ping(self) -> None:
        raise StoreUnavailable("down")

    def close(self) -> None:
        self.closed += 1


def _async(slow: SlowStore, workers: int) -> AsyncStore:
    fake: Any = slow
    store: Store = fake
    return AsyncStore(store, max_workers=workers)


async def test_calls_run_off_the_loop_in_a_bounded_pool() -> None:
    slow = SlowStore()
    store = _async(slow, 3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(ticker())
    await asyncio.gather(*(store.get_order(str(i)) for i in range(12)))
    beat.cancel()
    assert slow.peak == 3
    assert all(name.startswith("store") for name in slow.threads)
    assert ticks >= 5  # the loop kept running while the calls slept in threads
    await store.close()


async def test_errors_cross_the_thread_boundary_unchanged() -> None:
    store = _async(SlowStore(), 1)
    with pytest.raises(StoreUnavailable, match="down"):
        await store.ping()
    await store.close()


async def test_close_is_idempotent_and_final() -> None:
    slow = SlowStore()
    store = _async(slow, 2)
    pending = asyncio.ensure_future(store.get_order("x"))
    await asyncio.sleep(0)
    await store.close()
    await store.close()
    await pending  # a call in flight finished before the adapter closed
    assert slow.closed == 1
    with pytest.raises(StoreError, match="closed"):
        await store.get_order("y")
    with pytest.raises(ValueError):
        _async(slow, 0)
