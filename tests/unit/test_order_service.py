"""OrderService.mine: the page and total of a buyer's orders, merged from the store and
Redis's recent orders, match the straightforward merge (every recent order looked up in
the store), while reading far fewer store rows."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from api.security import Principal
from api.services.orders import MAX_MERGED, OrderService
from engine.models import Order


def _order(n: int, version: int = 0, created_at: int | None = None) -> Order:
    return Order(
        id=f"e.{n:05d}",
        event_id="e",
        user_id="u",
        tickets=[],
        total=0.0,
        status="RESERVED",
        expires_at=0,
        created_at=created_at if created_at is not None else 1_000 + n,
        version=version,
    )


def _newest_first(orders: list[Order]) -> list[Order]:
    return sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)


class FakeStore:
    def __init__(self, orders: list[Order]) -> None:
        self.orders = {o.id: o for o in orders}
        self.rows_read = 0
        self.queries = 0
        self.point_reads = 0

    async def list_user_orders(self, user_id: str, page: int, limit: int) -> Any:
        ordered = _newest_first(list(self.orders.values()))
        rows = ordered[(page - 1) * limit : page * limit]
        self.rows_read += len(rows)
        self.queries += 1
        return rows, len(ordered)

    async def get_order(self, order_id: str) -> Order | None:
        self.point_reads += 1
        return self.orders.get(order_id)


class FakeEngine:
    def __init__(self, recent: list[Order]) -> None:
        self.recent = _newest_first(recent)

    async def recent_user_orders(self, user_id: str) -> list[Order]:
        return list(self.recent)


async def _reference(store: FakeStore, engine: FakeEngine, page: int, limit: int) -> Any:
    """The merge as the order controller did it before the service layer."""
    depth = min(page * limit, MAX_MERGED)
    stored, stored_total = await store.list_user_orders("u", 1, depth)
    merged = {o.id: o for o in stored}
    unpersisted = 0
    for live in await engine.recent_user_orders("u"):
        known = merged.get(live.id)
        if known is None and await store.get_order(live.id) is None:
            unpersisted += 1
        if known is None or live.version >= known.version:
            merged[live.id] = live
    window = _newest_first(list(merged.values()))[(page - 1) * limit : page * limit]
    return [o.id for o in window], [o.version for o in window], stored_total + unpersisted


async def _mine(store: FakeStore, engine: FakeEngine, page: int, limit: int) -> Any:
    service = OrderService(engine, store, limiter=None)  # type: ignore[arg-type]
    found, total = await service.mine(Principal("u", "COMPRADOR"), page, limit)
    return [o.id for o in found], [o.version for o in found], total


def _world(rng: random.Random) -> tuple[FakeStore, FakeEngine]:
    """A user's orders: some only in the store (old), some in both (maybe at a newer
    version in Redis), some only in Redis (not persisted yet, anywhere in time)."""
    n = rng.randint(0, 400)
    orders = [_order(i, created_at=1_000 + i // rng.choice((1, 2, 3))) for i in range(n)]
    recent_from = max(0, n - rng.choice((0, 5, 50, 200)))
    recent = [
        msgspec.structs.replace(o, version=o.version + rng.choice((0, 0, 1)))
        for o in orders[recent_from:]
        if rng.random() < 0.9  # an order Redis does not list (e.g. the set was trimmed)
    ]
    stored = [o for o in orders if o.id not in {r.id for r in recent} or rng.random() < 0.8]
    return FakeStore(stored), FakeEngine(recent)


@pytest.mark.parametrize("seed", range(60))
async def test_mine_matches_the_reference_merge(seed: int) -> None:
    rng = random.Random(seed)
    store, engine = _world(rng)
    for page, limit in (
        (1, 1),
        (1, 20),
        (2, 20),
        (3, 7),
        (rng.randint(1, 30), rng.randint(1, 100)),
    ):
        assert await _mine(store, engine, page, limit) == await _reference(
            store, engine, page, limit
        ), (seed, page, limit)


async def test_recent_orders_older_than_the_page_cost_one_query() -> None:
    """200 recent orders, all persisted: limit=1 used to read the one row and then 199
    orders one by one; whether they are stored is now settled by one range read."""
    orders = [_order(i) for i in range(300)]
    store, engine = FakeStore(orders), FakeEngine(orders[-200:])
    ids, _, total = await _mine(store, engine, 1, 1)
    assert ids == ["e.00299"] and total == 300
    assert store.point_reads == 0 and store.queries == 2


async def test_recent_orders_within_the_page_cost_nothing_more() -> None:
    orders = [_order(i) for i in range(300)]
    store, engine = FakeStore(orders[:297]), FakeEngine(orders[-5:])
    ids, _, total = await _mine(store, engine, 1, 20)
    assert ids == [o.id for o in reversed(orders[280:])] and total == 300
    assert store.point_reads == 0 and store.queries == 1 and store.rows_read == 20


async def test_unpersisted_newest_orders_need_no_lookup() -> None:
    orders = [_order(i) for i in range(50)]
    store, engine = FakeStore(orders[:45]), FakeEngine(orders[30:])
    ids, _, total = await _mine(store, engine, 1, 10)
    assert ids == [o.id for o in reversed(orders[40:])] and total == 50
    assert store.point_reads == 0 and store.queries == 2 and store.rows_read == 10 + 15
