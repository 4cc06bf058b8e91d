"""The order writer against a real redis-server and the SQLite store.

Orders come from the real engine (Lua scripts append them to each event's order log);
the store is read back directly to compare with what Redis holds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from api.runtime import redis_client
from api.settings import load_settings
from engine import keys
from engine.core import Engine
from engine.models import CategorySpec, Order
from engine.redis_server import RedisServer
from engine.vocabulary import text
from persistence.aio import AsyncStore
from persistence.errors import StoreError, StoreUnavailable
from persistence.sqlite import SQLiteStore
from persistence.store import Store
from persistence.writer import (
    Entry,
    OrderWriter,
    measure_lag,
    next_id,
    replay_dead_letters,
    wait_persisted,
)
from persistence.writer.dead_letters import dead_letter

REPO = Path(__file__).resolve().parents[2]
GROUP = keys.WRITER_GROUP


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data" / "onsale.db")
    yield store
    store.close()


@pytest.fixture
async def astore(sqlite_store: SQLiteStore) -> AsyncIterator[AsyncStore]:
    store = AsyncStore(sqlite_store)
    yield store
    await store.close()


@pytest.fixture
def make_writer(redis: Redis, astore: AsyncStore) -> Callable[..., OrderWriter]:
    def make(name: str = "w1", store: AsyncStore | None = None, **options: Any) -> OrderWriter:
        options.setdefault("block_ms", 0)
        options.setdefault("backoff_initial_ms", 5)
        options.setdefault("backoff_max_ms", 40)
        return OrderWriter(redis, store or astore, name, **options)

    return make


async def arm(engine: Engine, event_id: str, per_category: int = 100_000) -> None:
    await engine.arm_event(
        event_id,
        [
            CategorySpec(id="vip", name="VIP", price=120.0, total=per_category),
            CategorySpec(id="gen", name="General", price=45.5, total=per_category),
        ],
        max_per_order=10,
    )


async def trade(
    engine: Engine, event_id: str, n: int, *, chunk: int = 250, pause: float = 0.0
) -> None:
    """n holds; 2 in 3 confirmed, 1 in 6 cancelled, the rest left held."""
    for start in range(0, n, chunk):
        idx = range(start, min(n, start + chunk))
        held = await asyncio.gather(
            *(engine.hold(event_id, f"user{i % 97}", [("gen", 1 + i % 3), ("vip", 1)]) for i in idx)
        )
        actions = []
        for i, result in zip(idx, held, strict=True):
            order = result.order
            if i % 3 != 0:
                actions.append(
                    engine.confirm(
                        order.id, order.user_id, payment_method="card", transaction_id=f"tx{i}"
                    )
                )
            elif i % 6 == 0:
                actions.append(engine.cancel(order.id, order.user_id))
        await asyncio.gather(*actions)
        if pause:
            await asyncio.sleep(pause)


async def redis_orders(engine: Engine, *event_ids: str) -> dict[str, Order]:
    out: dict[str, Order] = {}
    for event_id in event_ids:
        out.update({o.id: o for o in await engine.orders_of_event(event_id)})
    return out


def stored_orders(store: Store, *event_ids: str) -> dict[str, Order]:
    out: dict[str, Order] = {}
    for event_id in event_ids:
        orders, total = store.list_orders(1, 1_000_000, event_id=event_id)
        assert len(orders) == total
        out.update({o.id: o for o in orders})
    return out


async def pending(redis: Redis, event_id: str, group: str = GROUP) -> int:
    return int((await redis.xpending(keys.order_log(event_id), group))["pending"])


async def stream_ids(redis: Redis, stream: str) -> list[str]:
    return [e[0].decode() for e in await redis.xrange(stream)]


async def dead_letters(redis: Redis) -> list[dict[str, bytes]]:
    return [
        {k.decode(): v for k, v in fields.items()}
        for _, fields in await redis.xrange(keys.DEAD_LETTER)
    ]


def order_json(order: Order) -> bytes:
    return msgspec.json.encode(order)


# -- persistence: everything, once, final state --------------------------------------------


async def test_every_order_is_persisted_once_in_its_final_state(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    await arm(engine, "ev2")
    await asyncio.gather(trade(engine, "ev1", 1800), trade(engine, "ev2", 1200))
    expected = await redis_orders(engine, "ev1", "ev2")
    assert len(expected) == 3000
    entries = await redis.xlen(keys.order_log("ev1")) + await redis.xlen(keys.order_log("ev2"))
    assert entries == 3000 + 2000 + 500  # holds, confirms, cancels

    writer = make_writer(batch=500)
    report = await writer.run_until_idle(within_s=120)

    assert report.read == entries  # a clean run reads each entry once
    assert writer.stats.acked == entries
    stored = stored_orders(sqlite_store, "ev1", "ev2")
    assert stored == expected  # every order, every field, final version
    assert sqlite_store.list_orders(1, 1)[1] == 3000  # exactly once, nothing else
    assert {o.status for o in stored.values()} == {"CONFIRMED", "CANCELLED", "RESERVED"}
    assert await pending(redis, "ev1") == 0 and await pending(redis, "ev2") == 0
    assert await dead_letters(redis) == []
    assert max(writer.stats.batch_sizes) <= 500
    for event_id in ("ev1", "ev2"):
        stock = await engine.stock(event_id)
        assert stock is not None
        assert sqlite_store.sold_counts(event_id) == {c.id: c.sold for c in stock.categories}


async def test_one_upsert_per_order_per_batch_with_the_highest_version(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    calls: list[list[Order]] = []

    class Recording(SQLiteStore):
        def upsert_orders(self, orders: list[Order]) -> int:
            calls.append(list(orders))
            return super().upsert_orders(orders)

    await arm(engine, "ev1")
    await trade(engine, "ev1", 60)  # hold (v1) and confirm/cancel (v2) in the same batch
    store = AsyncStore(Recording(sqlite_store.path))
    writer = make_writer(store=store, batch=1000)
    await writer.run_until_idle()
    await store.close()

    assert len(calls) == 1
    ids = [o.id for o in calls[0]]
    assert len(ids) == len(set(ids)) == 60
    expected = await redis_orders(engine, "ev1")
    assert {o.id: o.version for o in calls[0]} == {i: o.version for i, o in expected.items()}
    assert any(o.version == 2 for o in calls[0])


async def test_replays_change_nothing(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    await trade(engine, "ev1", 300)
    writer = make_writer(batch=100, trim_interval_ms=3_600_000)  # keep the log to replay it
    await writer.run_until_idle()
    before = stored_orders(sqlite_store, "ev1")
    assert before == await redis_orders(engine, "ev1")

    # Replay the whole log (as after a lost acknowledgement), and an old entry by hand.
    log_key = keys.order_log("ev1")
    await redis.xgroup_setid(log_key, GROUP, "0")
    confirmed = next(o for o in before.values() if o.status == "CONFIRMED")
    stale = msgspec.structs.replace(confirmed, status="RESERVED", version=1)
    await redis.xadd(log_key, {"order": order_json(stale)})
    replay = await make_writer("w2", batch=100).run_until_idle()

    assert replay.read == 300 + 200 + 50 + 1  # holds, confirms, cancels, the stale entry
    assert stored_orders(sqlite_store, "ev1") == before
    assert sqlite_store.get_order(confirmed.id) == confirmed
    assert await pending(redis, "ev1") == 0


# -- poison --------------------------------------------------------------------------------


async def test_poison_entries_go_to_the_dead_letter_stream_and_block_nothing(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await trade(engine, "ev1", 10)
    bad_json = await redis.xadd(log_key, {"order": "notjson"})
    no_field = await redis.xadd(log_key, {"something": "else"})
    wrong_shape = await redis.xadd(log_key, {"order": '{"id": 42}'})
    await trade(engine, "ev1", 10)

    writer = make_writer(batch=7)  # poison lands in the middle of batches
    await writer.run_until_idle()

    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert len(stored_orders(sqlite_store, "ev1")) == 20
    dead = await dead_letters(redis)
    assert [d["id"] for d in dead] == [bad_json, no_field, wrong_shape]
    assert {d["stream"] for d in dead} == {log_key.encode()}
    assert b"undecodable" in dead[0]["error"]
    assert dead[0]["entry:order"] == b"notjson"  # the original entry, kept for replay
    assert b"no 'order' field" in dead[1]["error"]
    assert dead[1]["entry:something"] == b"else"
    assert b"undecodable" in dead[2]["error"]
    assert await pending(redis, "ev1") == 0
    assert writer.stats.dead_lettered == 3
    assert (await writer.lag()).dead_letters == 3


async def test_an_invalid_order_goes_to_the_dead_letter_stream_at_once(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    await arm(engine, "ev2")
    order = (await engine.hold("ev2", "u1", [("gen", 1)])).order
    stray = await redis.xadd(keys.order_log("ev1"), {"order": order_json(order)})
    unknown = msgspec.structs.replace(order, id="ev1.00000000000000ff", event_id="ev1")
    weird = await redis.xadd(
        keys.order_log("ev1"),
        {"order": order_json(msgspec.structs.replace(unknown, status="LOST"))},
    )

    writer = make_writer()
    await writer.run_until_idle()

    dead = await dead_letters(redis)
    assert [d["id"] for d in dead] == [stray, weird]
    assert b"in the log of event 'ev1'" in dead[0]["error"]
    assert b"unknown state 'LOST'" in dead[1]["error"]
    assert [d["deliveries"] for d in dead] == [b"1", b"1"]  # on its first delivery
    assert sqlite_store.get_order(order.id) == order  # from its own log
    assert sqlite_store.get_order(unknown.id) is None


async def test_an_entry_delivered_many_times_is_stored_not_dead_lettered(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    """Restarts and reclaims count as deliveries; they say nothing about the entry."""
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    first = (await engine.hold("ev1", "u1", [("gen", 1)])).order
    # A consumer that crashes on this entry, again and again: 12 deliveries.
    await redis.xreadgroup(GROUP, "crashy", {log_key: ">"}, count=10)
    for _ in range(11):
        await redis.xreadgroup(GROUP, "crashy", {log_key: "0"}, count=10)
    second = (await engine.hold("ev1", "u2", [("gen", 1)])).order

    writer = make_writer(min_idle_ms=0)
    await writer.run_until_idle()

    assert await dead_letters(redis) == []
    assert sqlite_store.get_order(first.id) == first
    assert sqlite_store.get_order(second.id) == second
    assert await pending(redis, "ev1") == 0


async def test_an_order_the_store_refuses_is_retried_never_dead_lettered(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    await trade(engine, "ev1", 30)
    orders = await redis_orders(engine, "ev1")
    cursed = sorted(orders)[7]
    refusals: list[str] = []

    class Picky(SQLiteStore):
        def upsert_orders(self, batch: list[Order]) -> int:
            if any(o.id == cursed for o in batch) and len(refusals) < 6:
                refusals.append(cursed)
                raise StoreError("document failed validation")
            return super().upsert_orders(batch)

    store = AsyncStore(Picky(sqlite_store.path))
    writer = make_writer(store=store)
    await writer.run_until_idle()
    await store.close()

    assert len(refusals) == 6
    assert writer.stats.store_refusals >= 4  # the batch, then that order alone, retried
    assert stored_orders(sqlite_store, "ev1") == orders  # the others did not wait for it
    assert await dead_letters(redis) == []
    assert await pending(redis, "ev1") == 0


# -- store outages -------------------------------------------------------------------------


class FlakyStore(SQLiteStore):
    """Raises StoreUnavailable for the first ``failures`` upserts; records what Redis
    looked like at each failure."""

    def __init__(self, path: Path, redis_url: str, event_id: str, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.calls: list[float] = []
        self.seen_pending: list[int] = []
        self.seen_deliveries: list[set[int]] = []
        self._redis = sync_redis.Redis.from_url(redis_url)
        self._log = keys.order_log(event_id)

    def upsert_orders(self, orders: list[Order]) -> int:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            rows = self._redis.xpending_range(self._log, GROUP, "-", "+", 10_000)
            self.seen_pending.append(len(rows))
            self.seen_deliveries.append({int(r["times_delivered"]) for r in rows})
            raise StoreUnavailable("database is down")
        return super().upsert_orders(orders)

    def close(self) -> None:
        self._redis.close()
        super().close()


async def test_store_outage_backs_off_loses_nothing_and_catches_up(
    redis: Redis,
    engine: Engine,
    make_writer: Callable[..., OrderWriter],
    sqlite_store: SQLiteStore,
    redis_server: RedisServer,
) -> None:
    await arm(engine, "ev1")
    await trade(engine, "ev1", 120)
    entries = await redis.xlen(keys.order_log("ev1"))
    flaky = FlakyStore(sqlite_store.path, redis_server.url, "ev1", failures=5)
    store = AsyncStore(flaky)
    writer = make_writer(store=store, batch=1000, backoff_initial_ms=10, backoff_max_ms=40)
    await writer.run_until_idle()
    await store.close()

    assert writer.stats.store_retries == 5
    assert len(flaky.calls) == 6
    # Nothing was acknowledged while the store was down, and the outage did not count
    # as redeliveries (the same batch was retried from memory).
    assert flaky.seen_pending == [entries] * 5
    assert flaky.seen_deliveries == [{1}] * 5
    gaps = [b - a for a, b in zip(flaky.calls, flaky.calls[1:], strict=False)]
    for gap, floor in zip(gaps, [0.010, 0.020, 0.040, 0.040, 0.040], strict=True):
        assert gap >= floor * 0.9  # exponential, capped at backoff_max_ms
    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert await pending(redis, "ev1") == 0
    assert await dead_letters(redis) == []


async def test_stop_during_an_outage_leaves_entries_pending_for_the_next_writer(
    redis: Redis,
    engine: Engine,
    make_writer: Callable[..., OrderWriter],
    sqlite_store: SQLiteStore,
    redis_server: RedisServer,
) -> None:
    await arm(engine, "ev1")
    await trade(engine, "ev1", 50)
    entries = await redis.xlen(keys.order_log("ev1"))
    down = AsyncStore(FlakyStore(sqlite_store.path, redis_server.url, "ev1", failures=10**9))
    stop = asyncio.Event()
    writer = make_writer("same-name", store=down, block_ms=50)
    task = asyncio.create_task(writer.run(stop))
    for _ in range(200):
        if writer.stats.store_retries >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    await down.close()
    assert writer.stats.store_retries >= 3
    assert await pending(redis, "ev1") == entries
    assert sqlite_store.list_orders(1, 1)[1] == 0

    # Restarted under the same name: its own pending entries first, no idle wait.
    again = make_writer("same-name", min_idle_ms=3_600_000)
    await again.run_until_idle()
    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert await pending(redis, "ev1") == 0


async def test_a_long_outage_with_many_restarts_never_dead_letters_a_valid_entry(
    redis: Redis,
    engine: Engine,
    make_writer: Callable[..., OrderWriter],
    sqlite_store: SQLiteStore,
    redis_server: RedisServer,
) -> None:
    """The store is down while writers restart again and again (each one re-reads its
    pending entries: a delivery each time) and reclaim from each other."""
    await arm(engine, "ev1")
    await trade(engine, "ev1", 40)
    log_key = keys.order_log("ev1")
    entries = await redis.xlen(log_key)
    for round_ in range(8):
        down = AsyncStore(FlakyStore(sqlite_store.path, redis_server.url, "ev1", failures=10**9))
        writer = make_writer(f"w{round_ % 2}", store=down, min_idle_ms=0, block_ms=20)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        for _ in range(500):
            if writer.stats.store_retries >= 2:
                break
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(task, 5)
        await down.close()
    rows = await redis.xpending_range(log_key, GROUP, "-", "+", 10_000)
    assert len(rows) == entries
    assert min(int(r["times_delivered"]) for r in rows) > 5
    assert await dead_letters(redis) == []

    await make_writer("w0", min_idle_ms=0).run_until_idle()
    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert await dead_letters(redis) == []
    assert await pending(redis, "ev1") == 0


# -- Redis losing its last second ----------------------------------------------------------


async def test_a_stored_sale_survives_a_released_copy_and_a_rearm(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    """Redis loses its last second after the writer stored a sale (a crash under
    everysec, a failover to a lagging replica): the hold comes back and expires, and its
    EXPIRED copy reaches the writer at the sale's version (and later). The store keeps the
    sale; when Redis is then lost entirely, re-arming keeps its tickets sold."""
    from api.services.recovery import rearm_from_store
    from persistence.store import Category, Event

    event = Event(
        id="ev1",
        name="Concierto",
        date=4_102_444_800_000,
        location="Madrid",
        capacity=20,
        base_price=10.0,
        organizer_id="org1",
        categories=[Category(id="vip", name="VIP", price=150.0, total=10)],
        created_at=0,
        updated_at=0,
    )
    sqlite_store.create_event(event)
    await engine.arm_event("ev1", [CategorySpec(id="vip", name="VIP", price=150.0, total=10)])
    held = (await engine.hold("ev1", "u1", [("vip", 3)])).order
    sale = (await engine.confirm(held.id, "u1", payment_method="card", transaction_id="tx1")).order
    writer = make_writer()
    await writer.run_until_idle()
    assert sqlite_store.get_order(held.id) == sale

    log_key = keys.order_log("ev1")
    for version in (sale.version, sale.version + 1):
        released = msgspec.structs.replace(held, status="EXPIRED", version=version)
        await redis.xadd(log_key, {"order": order_json(released)})
    await redis.hset(keys.orders("ev1"), held.id, order_json(released))  # Redis says EXPIRED
    await writer.run_until_idle()
    assert sqlite_store.get_order(held.id) == sale
    assert await dead_letters(redis) == []

    await redis.flushall()  # now Redis is lost entirely
    store = AsyncStore(SQLiteStore(sqlite_store.path))
    try:
        assert await rearm_from_store(engine, store) == 1
    finally:
        await store.close()
    stock = await engine.stock("ev1")
    assert stock is not None
    vip = stock.category("vip")
    assert vip is not None and (vip.sold, vip.available) == (3, 7)
    assert sqlite_store.get_order(held.id) == sale


# -- replaying dead letters ----------------------------------------------------------------


async def test_replayed_dead_letters_are_stored_once(
    redis: Redis,
    engine: Engine,
    make_writer: Callable[..., OrderWriter],
    sqlite_store: Store,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Valid orders parked by an older writer (delivery counts) go back to their log;
    poison stays; the command is idempotent and prints what it did."""
    await arm(engine, "ev1")
    await trade(engine, "ev1", 12)
    writer = make_writer()
    parked = await redis.xrange(keys.order_log("ev1"))
    await dead_letter(
        redis,
        [
            (Entry(keys.order_log("ev1"), text(i), f), "delivered 6 times (max 5)")
            for i, f in parked
        ],
        {},
        consumer="old-writer",
    )
    await redis.delete(keys.order_log("ev1"))  # parked, acknowledged and trimmed long ago
    await redis.xadd(keys.order_log("ev1"), {"order": "notjson"})
    await writer.run_until_idle()
    assert len(await dead_letters(redis)) == len(parked) + 1
    assert sqlite_store.list_orders(1, 1)[1] == 0

    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "REDIS_CLUSTER": "false",
        "MONGODB_URI": "",
        "DATA_DIR": str(tmp_path / "cli-data"),
        "LOG_LEVEL": "warning",
    }
    run = [sys.executable, "-m", "api.cli", "writer", "--replay-dead"]
    out = subprocess.run(run, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"replayed {len(parked)} dead letters" in out.stdout
    assert "1 left" in out.stdout
    assert len(await dead_letters(redis)) == 1  # the poison stays

    await writer.run_until_idle()
    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert len(await dead_letters(redis)) == 1

    again = await replay_dead_letters(redis)
    assert (again.replayed, again.kept) == (0, 1)
    # Interrupted between XADD and XDEL: the entry is in the log twice; storing is
    # idempotent, so nothing changes.
    some = parked[0][1]
    await redis.xadd(keys.order_log("ev1"), some)
    await redis.xadd(keys.order_log("ev1"), some)
    before = stored_orders(sqlite_store, "ev1")
    await writer.run_until_idle()
    assert stored_orders(sqlite_store, "ev1") == before


# -- dead consumers ------------------------------------------------------------------------


async def test_entries_of_a_dead_consumer_are_reclaimed(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    await trade(engine, "ev1", 40)
    entries = await redis.xlen(log_key)
    # A writer that read everything and died before acknowledging.
    await redis.xreadgroup(GROUP, "dead-writer", {log_key: ">"}, count=10_000)
    assert await pending(redis, "ev1") == entries

    patient = make_writer("w2", min_idle_ms=3_600_000)
    await patient.run_until_idle()
    assert sqlite_store.list_orders(1, 1)[1] == 0  # not idle long enough: left alone

    await asyncio.sleep(0.06)
    writer = make_writer("w3", min_idle_ms=50, batch=25)
    await writer.run_until_idle()
    assert stored_orders(sqlite_store, "ev1") == await redis_orders(engine, "ev1")
    assert writer.stats.reclaimed == entries
    assert await pending(redis, "ev1") == 0


async def test_entries_deleted_while_pending_are_acknowledged(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    kept = (await engine.hold("ev1", "u1", [("gen", 1)])).order
    gone = (await engine.hold("ev1", "u2", [("gen", 1)])).order
    await redis.xreadgroup(GROUP, "dead-writer", {log_key: ">"}, count=10)
    ids = await stream_ids(redis, log_key)
    await redis.xdel(log_key, ids[1])

    writer = make_writer(min_idle_ms=0)
    await writer.run_until_idle()
    assert sqlite_store.get_order(kept.id) == kept
    assert sqlite_store.get_order(gone.id) is None  # its entry no longer exists
    assert writer.stats.deleted_entries == 1
    assert await pending(redis, "ev1") == 0


async def test_consumers_long_gone_with_nothing_pending_are_forgotten(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter]
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    await redis.xreadgroup(GROUP, "old-and-empty", {log_key: ">"}, count=1)  # reads nothing
    await engine.hold("ev1", "u1", [("gen", 1)])
    await redis.xreadgroup(GROUP, "old-but-busy", {log_key: ">"}, count=1)  # holds 1 entry
    await asyncio.sleep(0.05)

    writer = make_writer(consumer_idle_gc_ms=20, min_idle_ms=3_600_000)
    await writer.run_once()
    names = {c["name"].decode() for c in await redis.xinfo_consumers(log_key, GROUP)}
    assert names == {"old-but-busy", "w1"}


# -- trimming ------------------------------------------------------------------------------


async def test_trim_keeps_everything_some_group_has_not_acknowledged(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter]
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    await redis.xgroup_create(log_key, "audit", id="0")
    await trade(engine, "ev1", 60)
    ids = await stream_ids(redis, log_key)
    assert len(ids) == 60 + 40 + 10

    # "audit" acknowledged its first 30 entries; the writer group all but entry 50.
    audit = await redis.xreadgroup("audit", "a1", {log_key: ">"}, count=30)
    await redis.xack(log_key, "audit", *[i for i, _ in audit[0][1]])
    await redis.xreadgroup(GROUP, "w0", {log_key: ">"}, count=1000)
    await redis.xack(log_key, GROUP, *[i for i in ids if i != ids[50]])

    writer = make_writer(trim_approximate=False)
    await writer.refresh_streams()
    assert await writer.trim_point(log_key) == next_id(ids[29])  # audit is the slowest
    await writer.trim()
    assert await stream_ids(redis, log_key) == ids[30:]

    rest = await redis.xreadgroup("audit", "a1", {log_key: ">"}, count=1000)
    await redis.xack(log_key, "audit", *[i for i, _ in rest[0][1]])
    assert await writer.trim_point(log_key) == ids[50]  # now the writer's unacked entry
    await writer.trim()
    assert await stream_ids(redis, log_key) == ids[50:]

    await redis.xack(log_key, GROUP, ids[50])
    assert await writer.trim_point(log_key) == next_id(ids[-1])
    await writer.trim()
    assert await stream_ids(redis, log_key) == []


async def test_approximate_trim_during_normal_running_never_drops_unacked(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    log_key = keys.order_log("ev1")
    await redis.xgroup_create(log_key, GROUP, id="0", mkstream=True)
    await trade(engine, "ev1", 600)  # 1100 entries: several stream nodes
    await redis.xreadgroup(GROUP, "dead-writer", {log_key: ">"}, count=450)
    ids = await stream_ids(redis, log_key)
    await redis.xack(log_key, GROUP, *ids[:400])  # 400..449 stay pending (dead consumer)

    writer = make_writer(trim_interval_ms=0, min_idle_ms=3_600_000)
    await writer.run_until_idle()
    after = await stream_ids(redis, log_key)
    assert ids[400:] == after[after.index(ids[400]) :]  # everything unacked is still there
    assert len(after) < len(ids)  # and something acknowledged was trimmed
    assert await pending(redis, "ev1") == 50
    assert writer.stats.trimmed == len(ids) - len(after)


# -- lag, durability waits, stream discovery -----------------------------------------------


async def test_lag_counts_unacknowledged_entries_and_their_age(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter]
) -> None:
    await arm(engine, "ev1")
    await arm(engine, "ev2")
    idle = await measure_lag(redis)
    assert (idle.streams, idle.unacked, idle.oldest_age_ms) == (2, 0, 0)

    await trade(engine, "ev1", 30)  # 55 entries
    await trade(engine, "ev2", 6)  # 11 entries
    log1 = keys.order_log("ev1")
    await redis.xgroup_create(log1, GROUP, id="0", mkstream=True)
    await redis.xreadgroup(GROUP, "someone", {log1: ">"}, count=20)
    await asyncio.sleep(0.03)
    lag = await measure_lag(redis)
    assert (lag.pending, lag.undelivered, lag.unacked) == (20, 35 + 11, 66)
    assert lag.oldest_age_ms >= 30
    assert lag.capped is False
    capped = await measure_lag(redis, ["ev1"], count_cap=10)
    if "lag" in (await redis.xinfo_groups(log1))[0]:
        # Redis >= 7 keeps the exact count per group: no cap is needed.
        assert capped.capped is False and capped.undelivered == 35
    else:
        assert capped.capped is True and capped.undelivered == 10

    writer = make_writer(min_idle_ms=0)
    await writer.run_until_idle()
    done = await writer.lag()
    assert (done.pending, done.undelivered, done.oldest_age_ms, done.dead_letters) == (0, 0, 0, 0)


async def test_wait_persisted(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], astore: AsyncStore
) -> None:
    await arm(engine, "ev1")
    stop = asyncio.Event()
    writer = make_writer(block_ms=50)
    task = asyncio.create_task(writer.run(stop))
    try:
        held = (await engine.hold("ev1", "u1", [("gen", 2)])).order
        sold = (
            await engine.confirm(held.id, "u1", payment_method="card", transaction_id="t1")
        ).order
        assert await writer.wait_persisted(sold.id, sold.version, timeout=10) is True
        assert await astore.get_order(sold.id) == sold
        assert await wait_persisted(astore, held.id, held.version, timeout=1) is True
        assert await writer.wait_persisted(sold.id, sold.version + 1, timeout=0.1) is False
        assert await wait_persisted(astore, "ev1.nope", 1, timeout=0.05) is False
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_linger_gathers_a_trickle_into_one_batch(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], astore: AsyncStore
) -> None:
    """After a partial batch the writer waits linger_ms before reading again, so the
    orders that arrive meanwhile are stored together; stopping during the wait is prompt
    and loses nothing (the entries stay in the log for the next writer)."""
    await arm(engine, "ev1")
    stop = asyncio.Event()
    writer = make_writer(block_ms=100, linger_ms=1_000)
    task = asyncio.create_task(writer.run(stop))
    try:
        first = (await engine.hold("ev1", "u1", [("gen", 1)])).order
        assert await writer.wait_persisted(first.id, first.version, timeout=10) is True
        assert writer.stats.batch_sizes == [1]
        trickle = [(await engine.hold("ev1", f"u{i}", [("gen", 1)])).order for i in range(10)]
        assert await writer.wait_persisted(trickle[-1].id, 1, timeout=10) is True
        assert writer.stats.batch_sizes == [1, 10]
        for order in trickle:
            assert await astore.get_order(order.id) == order
        late = (await engine.hold("ev1", "u1", [("gen", 1)])).order
        stop.set()  # during the linger that follows the batch of 10
        await asyncio.wait_for(task, 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert await astore.get_order(late.id) is None
    successor = make_writer(name="w2")
    await successor.run_until_idle()
    assert await astore.get_order(late.id) == late


async def test_a_forgotten_event_is_drained_before_it_is_dropped(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    await arm(engine, "old")
    await trade(engine, "old", 12)
    await engine.forget_event("old")  # no longer armed, but its log has unread entries
    await trade(engine, "ev1", 6)

    writer = make_writer(refresh_interval_ms=0)
    await writer.run_until_idle()
    assert len(stored_orders(sqlite_store, "old")) == 12
    await writer.run_once()
    assert writer.streams == [keys.order_log("ev1")]


async def test_a_log_recreated_without_its_group_is_followed_again(
    redis: Redis, engine: Engine, make_writer: Callable[..., OrderWriter], sqlite_store: Store
) -> None:
    await arm(engine, "ev1")
    writer = make_writer()
    await trade(engine, "ev1", 6)
    await writer.run_until_idle()
    await redis.delete(keys.order_log("ev1"))  # e.g. an operator's mistake
    late = (await engine.hold("ev1", "u9", [("gen", 1)])).order
    await writer.run_once()  # NOGROUP: the group is recreated at id 0
    await writer.run_until_idle()
    assert sqlite_store.get_order(late.id) == late
    assert len(stored_orders(sqlite_store, "ev1")) == 7


# -- Redis restarts ------------------------------------------------------------------------


async def test_the_writer_rides_out_a_redis_restart(
    fresh_redis_server: RedisServer, astore: AsyncStore, sqlite_store: Store
) -> None:
    # Built as the API builds it: a bare redis-py 8 client skips its pool's check for dead
    # connections, and the lag polls below then failed on one left from before the restart.
    url = fresh_redis_server.url
    client = redis_client(url, load_settings({"REDIS_URL": url}))
    engine = Engine(client)
    await engine.start()
    await arm(engine, "ev1")
    await trade(engine, "ev1", 150)
    stop = asyncio.Event()
    writer = OrderWriter(
        client, astore, "w1", block_ms=50, backoff_initial_ms=10, backoff_max_ms=100
    )
    task = asyncio.create_task(writer.run(stop))
    try:
        await asyncio.sleep(0.3)
        fresh_redis_server.kill()  # SIGKILL; AOF replays on restart
        await asyncio.sleep(0.3)
        fresh_redis_server.restart()
        await trade(engine, "ev1", 150)
        for _ in range(300):
            if (await measure_lag(client, ["ev1"])).unacked == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert writer.stats.errors >= 1  # it noticed the outage
    expected = await redis_orders(engine, "ev1")
    assert len(expected) >= 150
    assert stored_orders(sqlite_store, "ev1") == expected
    assert await pending(client, "ev1") == 0
    await client.aclose()


# -- SIGKILL -------------------------------------------------------------------------------


class WriterProcess:
    """``onsale writer`` as a real child process, configured as in production by the
    environment (the tuning flags make it reclaim a killed writer's entries quickly)."""

    def __init__(self, redis_url: str, data_dir: Path, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.spawned = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"writer-{self.spawned}.log"

    def start(self) -> None:
        self.spawned += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "api.cli",
                    "writer",
                    "--batch",
                    "200",
                    "--block-ms",
                    "100",
                    "--min-idle-ms",
                    "300",
                    "--reclaim-interval-ms",
                    "200",
                ],
                cwd=REPO,
                env={
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "REDIS_URL": self.redis_url,
                    "REDIS_CLUSTER": "false",
                    "MONGODB_URI": "",
                    "DATA_DIR": str(self.data_dir),
                    "LOG_LEVEL": "info",  # started() waits for the "started" line
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def started(self, within_s: float = 30.0) -> None:
        """Wait for the "started" log line (its signal handlers are in place by then)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.logs()
            if b"started" in self.log_path.read_bytes():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"writer did not start\n{self.logs()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(20)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.log_dir.glob("*.log"))
        )


@pytest.mark.slow
async def test_sigkilled_writers_lose_nothing_and_duplicate_nothing(
    redis: Redis, engine: Engine, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Orders flow in while writer processes are SIGKILLed again and again, some in the
    middle of a batch (entries read, not yet acknowledged). Afterwards one writer drains:
    every order is stored exactly once, in its final state, and nothing stays pending."""
    await arm(engine, "ev1")
    await arm(engine, "ev2")
    data_dir = tmp_path / "writer-data"
    logs = tmp_path / "logs"
    logs.mkdir()
    writers = WriterProcess(redis_server.url, data_dir, logs)
    rng = random.Random(20240601)
    enough = asyncio.Event()

    async def keep_trading(event_id: str, at_least: int) -> None:
        done = 0
        while done < at_least or not enough.is_set():
            await trade(engine, event_id, 60, chunk=60)
            done += 60
            await asyncio.sleep(0.03)
            if done >= 30 * at_least:  # bounded even if the kills never catch a batch
                break

    load = asyncio.gather(keep_trading("ev1", 2400), keep_trading("ev2", 1200))
    kills = kills_mid_batch = 0
    try:
        while kills < 40:
            writers.start()
            await writers.started()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            writers.kill()
            kills += 1
            lag = await measure_lag(redis, ["ev1", "ev2"])
            kills_mid_batch += lag.pending > 0
            if kills >= 8 and kills_mid_batch >= 3:
                break
        enough.set()
        await asyncio.wait_for(load, 120)
        expected = await redis_orders(engine, "ev1", "ev2")
        assert len(expected) >= 3600

        writers.start()  # the survivor drains what the killed ones left
        await writers.started()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if (await measure_lag(redis, ["ev1", "ev2"])).unacked == 0:
                break
            await asyncio.sleep(0.2)
        assert writers.terminate() == 0, writers.logs()  # SIGTERM: a clean stop
    finally:
        if writers.proc and writers.proc.poll() is None:
            writers.proc.kill()
            writers.proc.wait()
        enough.set()
        if not load.done():
            load.cancel()

    assert kills_mid_batch >= 3, f"only {kills_mid_batch} of {kills} kills caught a batch"
    lag = await measure_lag(redis, ["ev1", "ev2"])
    assert (lag.pending, lag.undelivered, lag.dead_letters) == (0, 0, 0), writers.logs()
    store = SQLiteStore(data_dir / "onsale.db")
    try:
        stored = stored_orders(store, "ev1", "ev2")
        assert store.list_orders(1, 1)[1] == len(expected)  # exactly once
        missing = set(expected) - set(stored)
        assert not missing, f"{len(missing)} orders never persisted\n{writers.logs()}"
        wrong = [i for i, o in expected.items() if stored[i] != o]
        assert not wrong, f"{len(wrong)} orders not in their final state"
        confirmed = [o for o in expected.values() if o.status == "CONFIRMED"]
        assert store.order_stats().by_status["CONFIRMED"] == len(confirmed) > 2000
    finally:
        store.close()
