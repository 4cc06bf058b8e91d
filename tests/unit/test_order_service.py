"""OrderService.mine: the page and total of a buyer's orders, merged from the store and
Redis's recent orders, match the full merge (every stored order of the buyer and every
recent order Redis holds, Redis's copy winning unless the store's is newer), while only
what the page needs is read: the store's page (and one row more for each order it does
not hold yet), Redis's copies of those orders and of the page's recent ones."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable
from typing import Any

import msgspec
import pytest

from api.security import Principal
from api.services.orders import OrderService
from engine.models import Order
from persistence.store import page_rows


def _order(n: int, version: int = 0, created_at: int | None = None, user: str = "u") -> Order:
    return Order(
        id=f"e.{n:05d}",
        event_id="e",
        user_id=user,
        tickets=[],
        total=0.0,
        status="RESERVED",
        expires_at=0,
        created_at=created_at if created_at is not None else 1_000 + n,
        version=version,
    )


def _newest_first(orders: Iterable[Order]) -> list[Order]:
    return sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)


class FakeStore:
    """The store's orders, counting what is read: rows (documents), ids, queries."""

    def __init__(self, orders: list[Order]) -> None:
        self.orders = {o.id: o for o in orders}
        self.rows_read = 0
        self.ids_read = 0
        self.queries = 0

    async def existing_order_ids(self, order_ids: Collection[str]) -> set[str]:
        self.queries += 1
        found = {i for i in order_ids if i in self.orders}
        self.ids_read += len(found)
        return found

    async def list_user_orders(
        self,
        user_id: str,
        page: int,
        limit: int,
        *,
        before: int = 0,
        exclude_ids: Collection[str] | None = None,
    ) -> Any:
        left_out = set(exclude_ids or ())
        mine = [o for o in self.orders.values() if o.user_id == user_id and o.id not in left_out]
        ordered = _newest_first(mine)
        offset, count = page_rows(page, limit, before)
        rows = ordered[offset : offset + count]
        self.rows_read += len(rows)
        self.queries += 1
        return rows, len(ordered)

    async def get_order(self, order_id: str) -> Order | None:
        self.queries += 1
        self.rows_read += order_id in self.orders
        return self.orders.get(order_id)


class FakeEngine:
    """Redis's orders and the buyer's recent-orders set (ids, newest first, some naming
    no order: a refused hold's id is remembered too), counting the orders read."""

    def __init__(self, live: list[Order], recent: list[str] | None = None) -> None:
        self.live = {o.id: o for o in live}
        self.recent = recent if recent is not None else [o.id for o in _newest_first(live)]
        self.orders_read = 0

    async def recent_user_order_ids(self, user_id: str) -> list[str]:
        return list(self.recent)

    async def get_orders(self, order_ids: Iterable[str]) -> list[Order]:
        found = [self.live[i] for i in order_ids if i in self.live]
        self.orders_read += len(found)
        return found

    async def recent_user_orders(self, user_id: str) -> list[Order]:
        return await self.get_orders(self.recent)


def _full_merge(store: FakeStore, engine: FakeEngine, page: int, limit: int) -> Any:
    """The answer, from everything: the buyer's stored orders and the recent ones Redis
    holds (its copy wins unless the store's is newer)."""
    merged = {o.id: o for o in store.orders.values() if o.user_id == "u"}
    for order_id in engine.recent:
        live = engine.live.get(order_id)
        if live is None or live.user_id != "u":
            continue
        known = merged.get(order_id)
        if known is None or live.version >= known.version:
            merged[order_id] = live
    window = _newest_first(merged.values())[(page - 1) * limit : page * limit]
    return [o.id for o in window], [o.version for o in window], len(merged)


async def _mine(store: FakeStore, engine: FakeEngine, page: int, limit: int) -> Any:
    service = OrderService(engine, store, limiter=None)  # type: ignore[arg-type]
    found, total = await service.mine(Principal("u", "COMPRADOR"), page, limit)
    return [o.id for o in found], [o.version for o in found], total


def _world(rng: random.Random) -> tuple[FakeStore, FakeEngine]:
    """A buyer's orders: some only in the store (old), some in both (maybe at a newer
    version in Redis, or in the store), some only in Redis (not persisted yet, anywhere
    in time); ties in creation time; ids in the recent set naming no order; someone
    else's orders in the store."""
    n = rng.randint(0, 400)
    step = rng.choice((1, 2, 3))
    orders = [_order(i, created_at=1_000 + i // step) for i in range(n)]
    recent_from = max(0, n - rng.choice((0, 5, 50, 200)))
    live = [
        msgspec.structs.replace(o, version=o.version + rng.choice((0, 0, 1)))
        for o in orders[recent_from:]
        if rng.random() < 0.9  # an order Redis no longer holds (retired after storing)
    ]
    unlisted = {o.id for o in live if rng.random() < 0.05}  # the set was trimmed
    recent = [o.id for o in _newest_first(live) if o.id not in unlisted]
    for _ in range(rng.choice((0, 0, 3, 30))):
        recent.insert(rng.randint(0, len(recent)), f"e.z{rng.getrandbits(32):08x}")
    live_ids = {o.id for o in live}
    stored = [
        msgspec.structs.replace(o, version=o.version + 2) if rng.random() < 0.03 else o
        for o in orders
        if o.id not in live_ids or rng.random() < 0.8
    ]
    theirs = [_order(10_000 + i, created_at=1_000 + rng.randint(0, n), user="x") for i in range(9)]
    return FakeStore([*stored, *theirs]), FakeEngine(live, recent)


@pytest.mark.parametrize("seed", range(80))
async def test_mine_matches_the_full_merge(seed: int) -> None:
    rng = random.Random(seed)
    store, engine = _world(rng)
    for page, limit in (
        (1, 1),
        (1, 20),
        (2, 20),
        (3, 20),
        (3, 7),
        (2, 100),
        (rng.randint(1, 30), rng.randint(1, 100)),
    ):
        assert await _mine(store, engine, page, limit) == _full_merge(store, engine, page, limit), (
            seed,
            page,
            limit,
        )


async def test_limit_1_reads_one_row_and_one_order_of_200_recent() -> None:
    """200 recent orders, all persisted, 300 in all: limit=1 used to read 201 rows of the
    store and the 200 orders from Redis; now the first row and its Redis copy."""
    orders = [_order(i) for i in range(300)]
    store, engine = FakeStore(orders), FakeEngine(orders[-200:])
    assert await _mine(store, engine, 1, 1) == (["e.00299"], [0], 300)
    assert store.rows_read == 1 and engine.orders_read == 1
    assert store.queries == 2  # which recent orders are stored (ids alone), and the page


async def test_a_deeper_page_reads_its_rows_and_one_more_per_unstored_order() -> None:
    """page=3&limit=20 with 5 orders not stored yet: 20 rows + 5 before them (the orders
    the unstored ones push down into the page), the 5 unstored orders and the page's
    recent stored ones from Redis; it used to read 260 rows and 200 orders."""
    orders = [_order(i) for i in range(300)]
    store, engine = FakeStore(orders[:-5]), FakeEngine(orders[-200:])
    ids, _, total = await _mine(store, engine, 3, 20)
    assert ids == [o.id for o in reversed(orders[240:260])] and total == 300
    assert store.rows_read == 25 and engine.orders_read == 5 + 20


async def test_an_order_in_redis_and_the_store_shows_once_at_its_newest() -> None:
    orders = [_order(i) for i in range(30)]
    confirmed = msgspec.structs.replace(orders[25], version=3, status="CONFIRMED")
    stale = msgspec.structs.replace(orders[26], version=0)
    store = FakeStore([*orders[:26], msgspec.structs.replace(orders[26], version=5), *orders[27:]])
    engine = FakeEngine([confirmed, stale, *orders[27:]])
    ids, versions, total = await _mine(store, engine, 1, 10)
    assert ids == [o.id for o in reversed(orders[20:])] and total == 30
    assert versions[ids.index(confirmed.id)] == 3  # Redis's newer copy
    assert versions[ids.index(stale.id)] == 5  # the store's newer copy


async def test_unstored_orders_at_page_boundaries() -> None:
    """Orders the store does not hold yet, older and newer than stored ones, fall on
    either side of each page boundary exactly as in the full merge."""
    orders = [_order(i) for i in range(40)]
    unstored = {3, 9, 10, 11, 19, 20, 30, 39}
    store = FakeStore([o for o in orders if int(o.id[2:]) not in unstored])
    engine = FakeEngine([o for o in orders if int(o.id[2:]) in unstored or int(o.id[2:]) > 35])
    for limit in (1, 3, 7, 10, 20, 40, 100):
        for page in range(1, 42 // limit + 3):
            assert await _mine(store, engine, page, limit) == _full_merge(
                store, engine, page, limit
            ), (page, limit)


async def test_orders_only_in_the_store_need_no_redis_order() -> None:
    orders = [_order(i) for i in range(50)]
    store, engine = FakeStore(orders), FakeEngine([])
    ids, _, total = await _mine(store, engine, 2, 20)
    assert ids == [o.id for o in reversed(orders[10:30])] and total == 50
    assert engine.orders_read == 0 and store.rows_read == 20 and store.queries == 1


async def test_only_the_callers_orders() -> None:
    mine, theirs, stored = _order(1), _order(2, user="x"), _order(3, user="x")
    store = FakeStore([mine, stored])
    engine = FakeEngine([mine, theirs, stored], recent=[stored.id, theirs.id, mine.id])
    assert await _mine(store, engine, 1, 10) == ([mine.id], [0], 1)  # whatever the set says


async def test_pages_past_the_2000th_order_are_read_too() -> None:
    """The store used to be read at most 2,000 rows deep: past that a page came back
    empty while the total counted every order."""
    orders = [_order(i) for i in range(2_500)]
    store, engine = FakeStore(orders), FakeEngine(orders[-200:])
    ids, _, total = await _mine(store, engine, 21, 100)
    assert ids == [o.id for o in reversed(orders[400:500])] and total == 2_500
    assert store.rows_read == 100
