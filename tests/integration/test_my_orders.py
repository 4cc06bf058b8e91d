"""A buyer's order list (OrderService.mine, ``GET /api/orders/my-orders``) on a real Redis
and the SQLite store: its pages (Redis's recent orders merged with the store's, Redis's
copy first) and what one page reads, counted by Redis (its commandstats) and by the
store (the rows it returned)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from api.security import Principal
from api.services.orders import OrderService
from engine.core import Engine
from engine.models import CategorySpec, Order
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from tests.contract import factories as f

BUYER = Principal(id="u1", role="COMPRADOR")
OTHER = Principal(id="u2", role="COMPRADOR")


class CountingStore(SQLiteStore):
    """The SQLite store, counting the orders (rows) its reads return."""

    rows = 0

    def list_user_orders(self, user_id: str, page: int, limit: int, **kw: Any) -> Any:
        found = super().list_user_orders(user_id, page, limit, **kw)
        self.rows += len(found[0])
        return found

    def get_order(self, order_id: str) -> Order | None:
        found = super().get_order(order_id)
        self.rows += found is not None
        return found

    def get_orders(self, order_ids: Collection[str]) -> list[Order]:
        found = super().get_orders(order_ids)
        self.rows += len(found)
        return found


async def _order_reads(redis: Redis) -> int:
    """Orders read from Redis so far: its order hashes' read commands."""
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
        for name in ("hget", "hmget", "hgetall", "hscan")
    )


def _ids(orders: list[Order]) -> list[str]:
    return [o.id for o in orders]


def _newest_first(orders: list[Order]) -> list[Order]:
    return sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)


@pytest.fixture
async def world(engine: Engine, tmp_path: Path) -> Any:
    await engine.arm_event(
        "mo", [CategorySpec(id="c", name="Campo", price=10, total=100_000)], max_per_order=10
    )
    raw = CountingStore(tmp_path / "store" / "onsale.db")
    store = AsyncStore(raw)
    yield engine, raw, OrderService(engine, store, limiter=None)  # type: ignore[arg-type]
    await store.close()


async def _hold(engine: Engine, who: Principal, n: int) -> list[Order]:
    return [(await engine.hold("mo", who.id, [("c", 1)], remember=True)).order for _ in range(n)]


async def test_pages_merge_redis_and_the_store(world: Any) -> None:
    engine, raw, service = world
    # 12 old orders only in the store (another event, no longer in Redis), 30 recent ones
    # in Redis: 24 also in the store, one of them confirmed since (Redis's copy newer),
    # one with a newer copy in the store; 6 not stored yet (the 5 newest and an older one).
    held = await _hold(engine, BUYER, 30)
    start = min(o.created_at for o in held)
    old = [f.order(event_id="past", user_id=BUYER.id, created_at=start - 99 + i) for i in range(12)]
    theirs = await _hold(engine, OTHER, 3)
    unstored = {held[7].id, *_ids(held[-5:])}
    newer_in_store = msgspec.structs.replace(held[3], version=held[3].version + 5)
    raw.upsert_orders(
        [*old, *theirs, newer_in_store, *(o for o in held if o.id not in unstored | {held[3].id})]
    )
    confirmed = (
        await engine.confirm(held[10].id, BUYER.id, payment_method="card", transaction_id="t1")
    ).order
    everything = _newest_first([*old, *held])
    shown = {o.id: o for o in everything} | {confirmed.id: confirmed, held[3].id: newer_in_store}

    assert await service.mine(OTHER, 1, 10) == (_newest_first(theirs), 3)
    for limit in (1, 5, 7, 20, 41, 42, 100):
        pages = -(-42 // limit)
        for page in range(1, pages + 2):
            found, total = await service.mine(BUYER, page, limit)
            want = [shown[o.id] for o in everything[(page - 1) * limit : page * limit]]
            assert (found, total) == (want, 42), (page, limit)
    first, _ = await service.mine(BUYER, 1, 100)
    by_id = {o.id: o for o in first}
    assert by_id[confirmed.id].status == "CONFIRMED"  # the live copy, not the stored hold
    assert by_id[held[3].id].version == newer_in_store.version  # the store's newer copy
    assert len(by_id) == 42 and not set(by_id) & set(_ids(theirs))


async def test_a_page_reads_only_what_it_shows(world: Any, redis: Redis) -> None:
    """300 orders, all stored, the newest 200 (RECENT_KEEP) the buyer's recent orders:
    limit=1 used to read 201 rows from the store and all 200 recent orders from Redis,
    page=3&limit=20 260 rows and 200 orders."""
    engine, raw, service = world
    held = await _hold(engine, BUYER, 300)
    raw.upsert_orders(held)
    newest = _newest_first(held)
    for page, limit in ((1, 1), (3, 20), (1, 100)):
        raw.rows, before = 0, await _order_reads(redis)
        found, total = await service.mine(BUYER, page, limit)
        assert _ids(found) == _ids(newest[(page - 1) * limit : page * limit]) and total == 300
        assert raw.rows == limit, (page, limit)
        assert await _order_reads(redis) - before <= limit, (page, limit)

    # The writer behind by 5 orders: one more row and one more Redis order each.
    more = await _hold(engine, BUYER, 5)
    newest = _newest_first([*held, *more])
    raw.rows, before = 0, await _order_reads(redis)
    found, total = await service.mine(BUYER, 3, 20)
    assert _ids(found) == _ids(newest[40:60]) and total == 305
    assert raw.rows <= 20 + 5 and await _order_reads(redis) - before <= 20 + 5
    raw.rows, before = 0, await _order_reads(redis)
    found, total = await service.mine(BUYER, 1, 1)
    assert _ids(found) == [newest[0].id] and total == 305
    assert raw.rows <= 1 and await _order_reads(redis) - before <= 5 + 1
