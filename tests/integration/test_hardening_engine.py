"""Production hardening at the engine level (issue 17): Idempotency-Key reuse across
requests and events, finished orders leaving Redis after a retention window, forgotten
events leaving every set, a full Redis refusing scripts without half-writes, and past
events off sale. Real redis-server processes; the writer with the SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import keys
from engine.core import Engine, EngineConfig
from engine.errors import EventPast, IdempotencyKeyReused, OrderRetired
from engine.expiry import Sweeper
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.writer import OrderWriter

pytestmark = pytest.mark.asyncio

CATS = [
    CategorySpec(id="vip", name="VIP", price=100, total=10),
    CategorySpec(id="gen", name="General", price=20, total=100),
]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def quick(redis: Redis) -> Engine:
    """An engine whose finished orders leave Redis 50 ms after the writer stored them."""
    eng = Engine(redis, EngineConfig(hold_ttl_ms=600_000, order_retention_ms=50))
    await eng.start()
    for event_id in ("e1", "e2"):
        await eng.arm_event(event_id, CATS)
    return eng


@pytest.fixture
async def astore(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    store = AsyncStore(SQLiteStore(tmp_path / "onsale.db"))
    yield store
    await store.close()


async def available(engine: Engine, event_id: str, category: str) -> int:
    stock = await engine.stock(event_id)
    assert stock is not None
    cat = stock.category(category)
    assert cat is not None
    return cat.available


# -- item 4: Idempotency-Key ---------------------------------------------------------------


async def test_same_key_with_other_tickets_is_refused_and_holds_nothing(quick: Engine) -> None:
    first = await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    again = await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    assert (again.order.id, again.created) == (first.order.id, False)
    with pytest.raises(IdempotencyKeyReused):
        await quick.hold("e1", "u1", [("vip", 2)], idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        await quick.hold("e1", "u1", [("vip", 1), ("gen", 1)], idempotency_key="k")
    assert await available(quick, "e1", "vip") == 9
    assert await available(quick, "e1", "gen") == 100


async def test_same_tickets_in_another_order_are_the_same_request(quick: Engine) -> None:
    first = await quick.hold("e1", "u1", [("vip", 1), ("gen", 2)], idempotency_key="k")
    again = await quick.hold("e1", "u1", [("gen", 1), ("vip", 1), ("gen", 1)], idempotency_key="k")
    assert (again.order.id, again.created) == (first.order.id, False)


async def test_the_other_tickets_check_holds_inside_the_script_too(
    quick: Engine, redis: Redis
) -> None:
    """Without the user's record (a crash after the hold), the event's own check refuses."""
    await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    await redis.delete(keys.user_idempotency("u1", "k"))
    with pytest.raises(IdempotencyKeyReused):
        await quick.hold("e1", "u1", [("vip", 3)], idempotency_key="k")
    assert await available(quick, "e1", "vip") == 9


async def test_a_key_is_scoped_per_user_across_events(quick: Engine) -> None:
    await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        await quick.hold("e2", "u1", [("vip", 1)], idempotency_key="k")
    assert await available(quick, "e2", "vip") == 10
    other = await quick.hold("e2", "u2", [("vip", 1)], idempotency_key="k")
    assert other.created


async def test_a_concurrent_reuse_on_two_events_keeps_one_order(quick: Engine) -> None:
    for round_ in range(20):
        key = f"race-{round_}"
        results = await asyncio.gather(
            quick.hold("e1", "u1", [("gen", 1)], idempotency_key=key),
            quick.hold("e2", "u1", [("gen", 1)], idempotency_key=key),
            return_exceptions=True,
        )
        kept = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, IdempotencyKeyReused)]
        assert len(kept) == 1 and len(refused) == 1, results
    held = 200 - await available(quick, "e1", "gen") - await available(quick, "e2", "gen")
    assert held == 20


async def test_the_key_record_expires(redis: Redis) -> None:
    eng = Engine(redis, EngineConfig(idempotency_ttl_s=86_400))
    await eng.start()
    await eng.arm_event("e1", CATS)
    await eng.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    ttl = await redis.ttl(keys.user_idempotency("u1", "k"))
    assert 86_000 < ttl <= 86_400


async def test_a_replay_after_the_order_left_redis_names_it(quick: Engine) -> None:
    held = (await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")).order
    cancelled = (await quick.cancel(held.id, "u1")).order
    await quick.retire_finished([cancelled])
    await asyncio.sleep(0.1)
    assert await quick.prune_event("e1") == 1
    with pytest.raises(OrderRetired) as caught:
        await quick.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    assert caught.value.details["order_id"] == held.id
    with pytest.raises(IdempotencyKeyReused):
        await quick.hold("e1", "u1", [("vip", 2)], idempotency_key="k")
    assert await available(quick, "e1", "vip") == 10


# -- item 9: retention, pruning, forgetting, a full Redis ----------------------------------


async def test_finished_orders_leave_redis_after_the_retention_window(
    quick: Engine, redis: Redis
) -> None:
    live = (await quick.hold("e1", "u1", [("gen", 1)])).order
    cancelled = (await quick.hold("e1", "u2", [("gen", 1)], idempotency_key="c")).order
    confirmed = (await quick.hold("e1", "u3", [("vip", 1)])).order
    cancelled = (await quick.cancel(cancelled.id, "u2")).order
    confirmed = (
        await quick.confirm(confirmed.id, "u3", payment_method="card", transaction_id="t")
    ).order
    assert await quick.retire_finished([live, cancelled, confirmed]) == 2
    assert await quick.prune_event("e1") == 0  # not due yet
    await asyncio.sleep(0.1)
    assert await quick.prune_event("e1") == 2
    assert [o.id for o in await quick.orders_of_event("e1")] == [live.id]
    assert not await redis.hexists(keys.idempotency("e1"), "u2:c")
    assert await redis.zcard(keys.retired("e1")) == 0
    stock = await quick.stock("e1")
    assert stock is not None and stock.category("vip").sold == 1  # type: ignore[union-attr]


async def test_an_order_retired_at_an_older_version_stays(quick: Engine) -> None:
    held = (await quick.hold("e1", "u1", [("gen", 1)])).order
    cancelled = (await quick.cancel(held.id, "u1")).order
    await quick.retire_orders("e1", [(held.id, held.version)])  # a stale version
    await asyncio.sleep(0.1)
    assert await quick.prune_event("e1") == 0
    assert await quick.get_order(held.id) == cancelled


async def test_the_writer_retires_what_it_stored_and_the_sweeper_prunes(
    quick: Engine, redis: Redis, astore: AsyncStore
) -> None:
    orders = [(await quick.hold("e1", f"u{i}", [("gen", 1)])).order for i in range(6)]
    for o in orders[:4]:
        await quick.cancel(o.id, o.user_id)
    writer = OrderWriter(redis, astore, "w1", block_ms=0)
    await writer.run_until_idle()
    assert await redis.zcard(keys.retired("e1")) == 4
    await asyncio.sleep(0.1)
    sweeper = Sweeper(quick)
    await sweeper.sweep_once()
    assert sweeper.stats.pruned == 4
    assert sorted(o.id for o in await quick.orders_of_event("e1")) == sorted(
        o.id for o in orders[4:]
    )
    for o in orders[:4]:  # reads fall back to the store
        stored = await astore.get_order(o.id)
        assert stored is not None and stored.status == "CANCELLED"


async def test_a_forgotten_event_leaves_every_set_and_the_sweeper_leaves_it(
    quick: Engine, redis: Redis
) -> None:
    held = (await quick.hold("e1", "u1", [("gen", 1)], idempotency_key="k")).order
    cancelled = (await quick.cancel(held.id, "u1")).order
    await quick.retire_finished([cancelled])
    await quick.forget_event("e1")
    assert not await redis.sismember(keys.EVENTS, "e1")
    for key in (keys.inventory("e1"), keys.idempotency("e1"), keys.deadlines("e1")):
        assert not await redis.exists(key), key
    assert not await redis.exists(keys.retired("e1"))
    for key in (keys.orders("e1"), keys.feed("e1")):
        assert 0 < await redis.pttl(key) <= 1000, key  # readable for the retention window
    assert await redis.exists(keys.order_log("e1"))  # the writer drains it first
    await Sweeper(quick).sweep_once()
    for key in (keys.inventory("e1"), keys.deadlines("e1"), keys.retired("e1")):
        assert not await redis.exists(key), key


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=False, maxmemory="64mb")
    server.start()
    yield server
    server.stop()


async def test_a_full_redis_refuses_scripts_and_nothing_is_half_written(
    small_redis: RedisServer,
) -> None:
    redis = Redis.from_url(small_redis.url)
    try:
        assert await redis.config_get("maxmemory") == {"maxmemory": str(64 << 20)}
        engine = Engine(redis, EngineConfig(batching=False))
        await engine.start()
        await engine.arm_event("e1", CATS)
        held = (await engine.hold("e1", "u1", [("vip", 1)])).order
        before = {
            k: await redis.dump(k)
            for k in (keys.inventory("e1"), keys.orders("e1"), keys.deadlines("e1"))
        }
        feed_len = await redis.xlen(keys.feed("e1"))
        log_len = await redis.xlen(keys.order_log("e1"))
        await redis.config_set("maxmemory", 1)  # far below what is used: Redis is full
        with pytest.raises(ResponseError, match="OOM"):
            await engine.hold("e1", "u2", [("vip", 1), ("gen", 2)])
        with pytest.raises(ResponseError, match="OOM"):
            await engine.confirm(held.id, "u1", payment_method="card", transaction_id="t")
        await redis.config_set("maxmemory", 64 << 20)
        for k, dumped in before.items():
            assert await redis.dump(k) == dumped, k
        assert await redis.xlen(keys.feed("e1")) == feed_len
        assert await redis.xlen(keys.order_log("e1")) == log_len
        again = await engine.hold("e1", "u2", [("vip", 1)])
        assert again.created
    finally:
        await redis.aclose()


# -- item 18: past events ------------------------------------------------------------------


async def test_an_event_whose_date_has_passed_refuses_holds(engine: Engine) -> None:
    await engine.arm_event("e1", CATS, starts_at=now_ms() - 1000)
    with pytest.raises(EventPast):
        await engine.hold("e1", "u1", [("vip", 1)])
    assert await available(engine, "e1", "vip") == 10
    # Moving the date forward puts it on sale again; re-arming without a date keeps it.
    await engine.set_state("e1", "open", {"fecha": "later"}, starts_at=now_ms() + 60_000)
    await engine.arm_event("e1", CATS)
    assert (await engine.hold("e1", "u1", [("vip", 1)])).created


async def test_an_event_becomes_past_by_the_server_clock(engine: Engine) -> None:
    await engine.arm_event("e1", CATS, starts_at=now_ms() + 300)
    assert (await engine.hold("e1", "u1", [("vip", 1)])).created
    await asyncio.sleep(0.4)
    with pytest.raises(EventPast):
        await engine.hold("e1", "u2", [("vip", 1)])


async def test_redis_maxmemory_setting() -> None:
    from api.settings import SettingsError, load_settings

    assert load_settings({}).redis_maxmemory == "1gb"
    assert load_settings({"REDIS_MAXMEMORY": "256MB"}).redis_maxmemory == "256mb"
    with pytest.raises(SettingsError, match="REDIS_MAXMEMORY"):
        load_settings({"REDIS_MAXMEMORY": "lots"})
    assert load_settings({"ORDER_RETENTION_MINUTES": "1"}).order_retention_s == 60
    assert load_settings({"IDEMPOTENCY_TTL_HOURS": "2"}).idempotency_ttl_s == 7200
