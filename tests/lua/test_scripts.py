"""One contract test per Lua script: return codes and the key state afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.errors import (
    BelowCommitted,
    CategoryInUse,
    CategoryNotFound,
    EventNotFound,
    EventNotOnSale,
    InvalidRequest,
    LimitExceeded,
    OrderAlreadyConfirmed,
    OrderCancelled,
    OrderExpired,
    OrderNotFound,
    SoldOut,
)
from engine.models import CategorySpec
from engine.scripts import LUA_DIR, Scripts

pytestmark = pytest.mark.asyncio

CATS = [
    CategorySpec(id="vip", name="VIP", price=150, total=10),
    CategorySpec(id="gen", name="General", price=49.99, total=100),
]


async def feed_events(redis: Redis, event_id: str) -> list[tuple[str, dict]]:
    out = []
    for _, fields in await redis.xrange(keys.feed(event_id)):
        out.append((fields[b"event"].decode(), msgspec.json.decode(fields[b"data"])))
    return out


async def stock_of(engine: Engine, event_id: str, cat: str) -> tuple[int, int, int, int]:
    s = await engine.stock(event_id)
    assert s is not None
    c = s.category(cat)
    assert c is not None
    return c.available, c.held, c.sold, c.total


# -- arm_event -----------------------------------------------------------------------------


async def test_arm_creates_inventory_and_is_idempotent(engine: Engine, redis: Redis) -> None:
    assert await engine.arm_event("e1", CATS) == 2
    assert await stock_of(engine, "e1", "vip") == (10, 0, 0, 10)
    await engine.hold("e1", "u1", [("vip", 3)])
    # Re-arming never touches live counts of known categories.
    assert await engine.arm_event("e1", CATS) == 0
    assert await stock_of(engine, "e1", "vip") == (7, 3, 0, 10)
    assert await redis.sismember(keys.EVENTS, "e1")


async def test_arm_with_sold_counts_rebuilds(engine: Engine) -> None:
    cats = [CategorySpec(id="a", name="A", price=1, total=5, sold=4)]
    await engine.arm_event("e1", cats)
    assert await stock_of(engine, "e1", "a") == (1, 0, 4, 5)


async def test_arm_refuses_sold_above_total(engine: Engine, redis: Redis) -> None:
    with pytest.raises(InvalidRequest):
        await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=1, total=5, sold=6)])
    assert not await redis.exists(keys.inventory("e1"))


# -- hold_tickets --------------------------------------------------------------------------


async def test_hold_reserves_all_categories_and_records_everything(
    engine: Engine, redis: Redis
) -> None:
    await engine.arm_event("e1", CATS)
    res = await engine.hold("e1", "u1", [("vip", 2), ("gen", 3)])
    order = res.order
    assert res.created and order.status == "RESERVED"
    assert order.total == pytest.approx(2 * 150 + 3 * 49.99)
    assert await stock_of(engine, "e1", "vip") == (8, 2, 0, 10)
    assert await stock_of(engine, "e1", "gen") == (97, 3, 0, 100)
    assert await redis.zscore(keys.deadlines("e1"), order.id) == order.expires_at
    ttl = await redis.pttl(keys.timer("e1", order.id))
    assert 590_000 < ttl <= 600_000
    assert order.expires_at - order.created_at == 600_000
    log = await redis.xrange(keys.order_log("e1"))
    assert len(log) == 1
    events = [name for name, _ in await feed_events(redis, "e1")]
    assert events.count("ticket:stock-update") == 4  # 2 from arming, 2 from the hold
    assert events[-1] == "order:status-change"


async def test_hold_is_all_or_nothing(engine: Engine, redis: Redis) -> None:
    await engine.arm_event("e1", CATS, max_per_order=50)
    before = await redis.xlen(keys.feed("e1"))
    with pytest.raises(SoldOut) as info:
        await engine.hold("e1", "u1", [("gen", 5), ("vip", 11)])
    assert info.value.details == {"category": "vip", "available": 10}
    assert await stock_of(engine, "e1", "gen") == (100, 0, 0, 100)
    assert await redis.xlen(keys.feed("e1")) == before
    assert await redis.xlen(keys.order_log("e1")) == 0


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([("nope", 1)], CategoryNotFound),
        ([("vip", 6), ("gen", 5)], LimitExceeded),
        ([("vip", 0)], InvalidRequest),
        ([], InvalidRequest),
    ],
)
async def test_hold_refusals_change_nothing(
    engine: Engine, redis: Redis, items: list[tuple[str, int]], error: type[Exception]
) -> None:
    await engine.arm_event("e1", CATS)
    before = await redis.hgetall(keys.inventory("e1"))
    with pytest.raises(error):
        await engine.hold("e1", "u1", items)
    assert await redis.hgetall(keys.inventory("e1")) == before
    assert await redis.hlen(keys.orders("e1")) == 0


async def test_hold_unknown_or_closed_event(engine: Engine) -> None:
    with pytest.raises(EventNotFound):
        await engine.hold("missing", "u1", [("vip", 1)])
    await engine.arm_event("e1", CATS, on_sale=False)
    with pytest.raises(EventNotOnSale):
        await engine.hold("e1", "u1", [("vip", 1)])


async def test_hold_retried_with_same_request_id_acts_once(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    first = await engine.hold("e1", "u1", [("vip", 2)], order_id="e1.req1")
    again = await engine.hold("e1", "u1", [("vip", 2)], order_id="e1.req1")
    assert first.created and not again.created
    assert again.order == first.order
    assert await stock_of(engine, "e1", "vip") == (8, 2, 0, 10)


async def test_idempotency_key_is_per_user(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    a = await engine.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    b = await engine.hold("e1", "u1", [("vip", 1)], idempotency_key="k")
    c = await engine.hold("e1", "u2", [("vip", 1)], idempotency_key="k")
    assert b.order.id == a.order.id and not b.created
    assert c.created and c.order.id != a.order.id
    assert await stock_of(engine, "e1", "vip") == (8, 2, 0, 10)


async def test_low_stock_fires_once_per_crossing(redis: Redis) -> None:
    engine = Engine(redis, EngineConfig(low_stock_threshold=0.2, batching=False))
    await engine.start()
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=1, total=10)])
    held = [await engine.hold("e1", f"u{i}", [("a", 3)]) for i in range(2)]  # 10 -> 7 -> 4
    await engine.hold("e1", "u9", [("a", 2)])  # 4 -> 2: crosses the limit of 2
    await engine.hold("e1", "u8", [("a", 1)])  # 2 -> 1: still below, no second alert
    alerts = [d for n, d in await feed_events(redis, "e1") if n == "ticket:almost-sold-out"]
    assert alerts == [{"eventoId": "e1", "categoriaId": "a", "stockRestante": 2}]
    for h in held:  # back up to 7: the flag clears
        await engine.cancel(h.order.id, h.order.user_id)
    await engine.hold("e1", "u7", [("a", 5)])  # 7 -> 2: a new crossing
    alerts = [d for n, d in await feed_events(redis, "e1") if n == "ticket:almost-sold-out"]
    assert len(alerts) == 2


# -- confirm_order -------------------------------------------------------------------------


async def test_confirm_moves_held_to_sold(engine: Engine, redis: Redis) -> None:
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 2)])).order
    res = await engine.confirm(order.id, "u1", payment_method="card", transaction_id="t1")
    assert res.created and res.order.status == "CONFIRMED"
    assert res.order.transaction_id == "t1" and res.order.confirmed_at
    assert await stock_of(engine, "e1", "vip") == (8, 0, 2, 10)
    assert await redis.zscore(keys.deadlines("e1"), order.id) is None
    assert not await redis.exists(keys.timer("e1", order.id))
    again = await engine.confirm(order.id, "u1", payment_method="card", transaction_id="t1")
    assert not again.created and again.order.status == "CONFIRMED"
    with pytest.raises(OrderAlreadyConfirmed):
        await engine.confirm(order.id, "u1", payment_method="card", transaction_id="t2")
    assert await stock_of(engine, "e1", "vip") == (8, 0, 2, 10)


async def test_confirm_by_someone_else_is_not_found(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 2)])).order
    with pytest.raises(OrderNotFound):
        await engine.confirm(order.id, "u2", payment_method="card", transaction_id="t")
    admin = await engine.confirm(
        order.id, "admin", payment_method="card", transaction_id="t", is_admin=True
    )
    assert admin.order.status == "CONFIRMED"
    with pytest.raises(OrderNotFound):
        await engine.confirm("e1.nothere", "u1", payment_method="c", transaction_id="t")
    with pytest.raises(OrderNotFound):
        await engine.confirm("garbage", "u1", payment_method="c", transaction_id="t")


async def test_confirm_after_deadline_expires_and_releases(redis: Redis) -> None:
    engine = Engine(redis, EngineConfig(hold_ttl_ms=50, batching=False))
    await engine.start()
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 2)])).order
    await asyncio.sleep(0.08)
    with pytest.raises(OrderExpired):
        await engine.confirm(order.id, "u1", payment_method="card", transaction_id="t")
    assert await stock_of(engine, "e1", "vip") == (10, 0, 0, 10)
    stored = await engine.get_order(order.id)
    assert stored is not None and stored.status == "EXPIRED"
    with pytest.raises(OrderExpired):
        await engine.confirm(order.id, "u1", payment_method="card", transaction_id="t")


# -- cancel_order --------------------------------------------------------------------------


async def test_cancel_returns_stock_once(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 4)])).order
    with pytest.raises(OrderNotFound):
        await engine.cancel(order.id, "u2")
    res = await engine.cancel(order.id, "u1")
    assert res.created and res.order.status == "CANCELLED"
    assert await stock_of(engine, "e1", "vip") == (10, 0, 0, 10)
    again = await engine.cancel(order.id, "u1")
    assert not again.created
    assert await stock_of(engine, "e1", "vip") == (10, 0, 0, 10)
    with pytest.raises(OrderCancelled):
        await engine.confirm(order.id, "u1", payment_method="c", transaction_id="t")


async def test_cancel_confirmed_is_refused(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 1)])).order
    await engine.confirm(order.id, "u1", payment_method="c", transaction_id="t")
    with pytest.raises(OrderAlreadyConfirmed):
        await engine.cancel(order.id, "u1")
    assert await stock_of(engine, "e1", "vip") == (9, 0, 1, 10)


# -- expire_hold and sweep_due -------------------------------------------------------------


async def test_expire_hold_only_when_due_and_only_once(redis: Redis) -> None:
    engine = Engine(redis, EngineConfig(hold_ttl_ms=100, batching=False))
    await engine.start()
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 3)])).order
    assert not await engine.expire("e1", order.id)  # not due yet
    assert await stock_of(engine, "e1", "vip") == (7, 3, 0, 10)
    await asyncio.sleep(0.15)
    assert await engine.expire("e1", order.id)
    assert not await engine.expire("e1", order.id)
    assert await engine.sweep_event("e1") == 0
    assert await stock_of(engine, "e1", "vip") == (10, 0, 0, 10)
    assert await redis.zcard(keys.deadlines("e1")) == 0


async def test_sweep_releases_due_holds_in_batches(redis: Redis) -> None:
    engine = Engine(redis, EngineConfig(hold_ttl_ms=100, sweep_batch=7, batching=False))
    await engine.start()
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=1, total=100)])
    for i in range(30):
        await engine.hold("e1", f"u{i}", [("a", 2)])
    keep = Engine(redis, EngineConfig(hold_ttl_ms=60_000, batching=False))
    late = (await keep.hold("e1", "late", [("a", 1)])).order
    await asyncio.sleep(0.15)
    assert await engine.sweep_event("e1") == 30
    assert await stock_of(engine, "e1", "a") == (99, 1, 0, 100)
    assert (await engine.get_order(late.id)).status == "RESERVED"  # type: ignore[union-attr]
    assert await redis.zcard(keys.deadlines("e1")) == 1
    assert (await audit(engine)).clean


# -- adjust_category and set_event_state ---------------------------------------------------


async def test_adjust_category_resizes_against_live_holds(engine: Engine) -> None:
    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 4)])).order
    await engine.confirm(order.id, "u1", payment_method="c", transaction_id="t")
    await engine.hold("e1", "u2", [("vip", 3)])
    assert await engine.adjust_category("e1", "vip", 20, price=150, name="VIP") == 13
    assert await stock_of(engine, "e1", "vip") == (13, 3, 4, 20)
    with pytest.raises(BelowCommitted):
        await engine.adjust_category("e1", "vip", 6, price=150, name="VIP")
    assert await engine.adjust_category("e1", "vip", 7, price=150, name="VIP") == 0
    with pytest.raises(CategoryInUse):
        await engine.remove_category("e1", "vip")
    assert await engine.adjust_category("e1", "new", 5, price=10, name="New") == 5
    await engine.remove_category("e1", "new")
    stock = await engine.stock("e1")
    assert stock is not None and [c.id for c in stock.categories] == ["vip", "gen"]
    with pytest.raises(CategoryNotFound):
        await engine.remove_category("e1", "new")
    with pytest.raises(EventNotFound):
        await engine.adjust_category("nope", "x", 1, price=1, name="x")


async def test_adjust_category_publishes_each_change_in_the_same_script(
    engine: Engine, redis: Redis
) -> None:
    """Created, renamed, repriced, resized, removed: each is an ``event:update`` with
    what a viewer needs (the category as the REST API shows it, or the removed id), beside
    the stock entries the change makes, in the script that makes it."""
    await engine.arm_event("e1", CATS)
    await engine.hold("e1", "u1", [("vip", 3)])
    start = len(await feed_events(redis, "e1"))

    async def published() -> list[tuple[str, dict[str, Any]]]:
        nonlocal start
        entries = await feed_events(redis, "e1")
        new, start = entries[start:], len(entries)
        return new

    def category(
        cid: str, name: str, price: float, total: int, perks: list[str], left: int
    ) -> tuple[str, dict[str, Any]]:
        cat = {"id": cid, "nombre": name, "precio": price, "cantidadTotal": total}
        cat |= {"beneficios": perks, "disponible": left}
        return ("event:update", {"eventoId": "e1", "cambios": {"categoria": cat}})

    def stock(cid: str, left: int) -> tuple[str, dict[str, Any]]:
        return ("ticket:stock-update", {"eventoId": "e1", "categoriaId": cid, "nuevoStock": left})

    assert await engine.adjust_category("e1", "new", 5, price=10, name="New") == 5
    # An empty benefits list stays a list (Redis 6.2's cjson would make it {}).
    assert await published() == [category("new", "New", 10, 5, [], 5), stock("new", 5)]
    perks = ["Early entry", 'Seat "A/1"', "ñandú"]
    await engine.adjust_category("e1", "vip", 10, price=175.5, name="VIP Gold", benefits=perks)
    assert await published() == [category("vip", "VIP Gold", 175.5, 10, perks, 7)]
    await engine.adjust_category("e1", "vip", 12, price=175.5, name="VIP Gold")
    assert await published() == [category("vip", "VIP Gold", 175.5, 12, [], 9), stock("vip", 9)]
    await engine.adjust_category("e1", "vip", 4, price=175.5, name="VIP Gold")
    assert await published() == [
        category("vip", "VIP Gold", 175.5, 4, [], 1),
        stock("vip", 1),
        ("ticket:almost-sold-out", {"eventoId": "e1", "categoriaId": "vip", "stockRestante": 1}),
    ]
    await engine.remove_category("e1", "new")
    assert await published() == [
        stock("new", 0),
        ("event:update", {"eventoId": "e1", "cambios": {"categoriaEliminada": "new"}}),
    ]
    # Refused changes publish nothing.
    with pytest.raises(BelowCommitted):
        await engine.adjust_category("e1", "vip", 2, price=1, name="x")
    with pytest.raises(CategoryNotFound):
        await engine.remove_category("e1", "new")
    assert await published() == []
    stored = await engine.stock("e1")
    assert stored is not None
    vip = stored.category("vip")
    assert vip is not None and (vip.name, vip.price, vip.total) == ("VIP Gold", 175.5, 4)


async def test_adjust_category_refuses_malformed_benefits_and_price(
    engine: Engine, redis: Redis
) -> None:
    await engine.arm_event("e1", CATS)
    before = await redis.hgetall(keys.inventory("e1"))
    length = await redis.xlen(keys.feed("e1"))
    ids, timers = engine._slots("e1")
    base = [keys.inventory("e1"), keys.feed("e1"), keys.orders("e1"), keys.deadlines("e1")]
    cat_keys = [*base, keys.order_log("e1"), *engine._waitlist_keys("e1"), *timers]
    for price, benefits in ((10, "{}"), (10, "nope"), (10, '"x"'), ("x", "[]")):
        args = ["e1", "vip", 20, price, "VIP", 1000, 60_000, *ids, benefits]
        code, _ = await engine.scripts.call("adjust_category", cat_keys, args)
        assert int(code) == -6, (price, benefits)
    assert await redis.hgetall(keys.inventory("e1")) == before
    assert await redis.xlen(keys.feed("e1")) == length


async def test_set_state_closes_sale_and_publishes(engine: Engine, redis: Redis) -> None:
    await engine.arm_event("e1", CATS)
    assert await engine.set_state("e1", "closed", {"estado": "closed"}) == "open"
    with pytest.raises(EventNotOnSale):
        await engine.hold("e1", "u1", [("vip", 1)])
    updates = [d for n, d in await feed_events(redis, "e1") if n == "event:update"]
    assert updates == [{"eventoId": "e1", "cambios": {"estado": "closed"}}]
    with pytest.raises(EventNotFound):
        await engine.set_state("nope", "open")


# -- loading -------------------------------------------------------------------------------


async def test_noscript_recovery_between_calls(engine: Engine, redis: Redis) -> None:
    await engine.arm_event("e1", CATS)
    await redis.script_flush()
    assert not await engine.scripts.loaded()
    res = await engine.hold("e1", "u1", [("vip", 1)])  # batched path
    assert res.created
    await redis.script_flush()
    direct = Engine(redis, EngineConfig(batching=False))
    assert (await direct.hold("e1", "u2", [("vip", 1)])).created  # direct path
    await redis.script_flush()
    results = await asyncio.gather(*(engine.hold("e1", f"b{i}", [("gen", 1)]) for i in range(20)))
    assert all(r.created for r in results)
    assert await stock_of(engine, "e1", "gen") == (80, 20, 0, 100)


async def test_a_full_batch_is_written_before_the_turn_ends(engine: Engine) -> None:
    """Once eager_at calls are queued and a connection is at hand, they are written at
    once (in flight before the caller yields), and every caller gets its own reply."""
    await engine.arm_event("e1", CATS)
    await engine.hold("e1", "warm", [("gen", 1)])  # opens the connection for batches
    scripts = engine.scripts
    assert scripts._pipe is not None and not scripts._pipe.sizes
    calls = [engine.hold("e1", f"u{i}", [("gen", 1)]) for i in range(scripts.eager_at + 3)]
    tasks = [asyncio.ensure_future(c) for c in calls]
    # Each task queues its call when it first runs: let them run up to their await, in
    # one turn, and check the first eager_at were already written.
    await asyncio.sleep(0)
    assert scripts._pipe.sizes and scripts._pipe.sizes[0] == scripts.eager_at
    results = await asyncio.gather(*tasks)
    assert [r.order.user_id for r in results] == [f"u{i}" for i in range(len(calls))]
    assert len({r.order.id for r in results}) == len(calls)
    assert await stock_of(engine, "e1", "gen") == (100 - 1 - len(calls), 1 + len(calls), 0, 100)


async def _kill_pipe(scripts: Scripts, redis: Redis) -> None:
    pipe = scripts._pipe
    assert pipe is not None
    host, port = pipe.writer.get_extra_info("sockname")[:2]
    assert await redis.client_kill_filter(_id=None, addr=f"{host}:{port}") == 1


async def test_calls_survive_a_connection_that_died_between_batches(
    engine: Engine, redis: Redis
) -> None:
    """The batch connection closed under us while idle (a Redis restart kills it): the
    next calls go through on a fresh connection, once each."""
    await engine.arm_event("e1", CATS)
    await asyncio.gather(*(engine.hold("e1", f"w{i}", [("gen", 1)]) for i in range(20)))
    scripts = engine.scripts
    first = scripts._pipe
    await _kill_pipe(scripts, redis)
    results = await asyncio.gather(
        *(engine.hold("e1", f"u{i}", [("gen", 1)], order_id=f"e1.{i:016x}") for i in range(20))
    )
    assert all(r.created for r in results)
    assert scripts._pipe is not None and scripts._pipe is not first
    assert await stock_of(engine, "e1", "gen") == (60, 40, 0, 100)


async def test_calls_in_flight_on_a_lost_connection_are_sent_again_once(
    engine: Engine,
) -> None:
    """The connection drops after a batch was written and before its replies came: the
    calls are sent once more on a fresh connection (whether or not Redis ran them), and
    their order ids keep them from holding twice."""
    await engine.arm_event("e1", CATS)
    await engine.hold("e1", "warm", [("gen", 1)])
    scripts = engine.scripts
    tasks = [
        asyncio.ensure_future(engine.hold("e1", f"u{i}", [("gen", 1)], order_id=f"e1.{i:016x}"))
        for i in range(scripts.eager_at)
    ]
    await asyncio.sleep(0)  # every task queues its call; the eager_at-th writes the batch
    pipe = scripts._pipe
    assert pipe is not None and len(pipe.calls) == scripts.eager_at
    pipe.writer.transport.abort()
    results = await asyncio.gather(*tasks)
    assert [r.order.id for r in results] == [f"e1.{i:016x}" for i in range(len(tasks))]
    assert scripts._pipe is not None and scripts._pipe is not pipe
    assert await stock_of(engine, "e1", "gen") == (100 - 1 - len(tasks), 1 + len(tasks), 0, 100)


async def test_feed_is_capped(redis: Redis) -> None:
    engine = Engine(redis, EngineConfig(feed_maxlen=100, batching=False))
    await engine.start()
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=1, total=1000)])
    for i in range(300):
        await engine.hold("e1", f"u{i}", [("a", 1)])
    assert await redis.xlen(keys.feed("e1")) < 300
    assert await redis.xlen(keys.order_log("e1")) == 300  # never capped


async def test_lua_iso_times_match_python(engine: Engine, redis: Redis) -> None:
    from engine.models import iso

    await engine.arm_event("e1", CATS)
    order = (await engine.hold("e1", "u1", [("vip", 1)])).order
    changes = [d for n, d in await feed_events(redis, "e1") if n == "order:status-change"]
    assert changes == [
        {"orderId": order.id, "nuevoEstado": "RESERVED", "expiraEn": iso(order.expires_at)}
    ]
    # Leap day and year boundaries of the civil-from-days conversion.
    for ms in (951_782_400_000, 1_709_164_800_123, 1_735_689_599_999, 4_107_542_400_000):
        lib = (LUA_DIR / "lib" / "common.lua").read_text()
        got = await redis.eval(lib + "\nreturn iso(tonumber(ARGV[1]))", 0, ms)
        assert got.decode() == iso(ms), ms


# -- remember_order ------------------------------------------------------------------------


async def test_remember_order_keeps_the_newest_and_expires(engine: Engine, redis: Redis) -> None:
    await engine.arm_event("e1", CATS, max_per_order=50)
    made = [(await engine.hold("e1", "u1", [("gen", 1)])).order for _ in range(5)]
    for order in made:
        await engine.note_user_order(order, keep=3, ttl_s=100)
    key = keys.user_orders("u1")
    assert await redis.zcard(key) == 3
    assert 0 < await redis.ttl(key) <= 100
    recent = await engine.recent_user_orders("u1")
    newest = sorted(made, key=lambda o: (o.created_at, o.id), reverse=True)[:3]
    assert [o.id for o in recent] == [o.id for o in newest]
    assert await engine.recent_user_orders("nobody") == []


async def test_a_hold_that_makes_no_order_leaves_no_id_in_the_recent_orders(
    engine: Engine, redis: Redis
) -> None:
    """The hold's remember_order rides in its round trip, before its answer: a refused
    hold, or a replay answering an earlier order, takes back the id it made no order under
    (forget_order). Before, each refused attempt left one: 1 hold + 3 refusals, 4 ids."""
    assert engine.config.batching
    await engine.arm_event("e1", [CategorySpec(id="gen", name="General", price=10, total=1)])
    first = await engine.hold("e1", "u1", [("gen", 1)], idempotency_key="k1", remember=True)
    for _ in range(3):
        with pytest.raises(SoldOut):
            await engine.hold("e1", "u1", [("gen", 1)], remember=True)
    with pytest.raises(CategoryNotFound):
        await engine.hold("e1", "u1", [("nosuch", 1)], remember=True)
    again = await engine.hold("e1", "u1", [("gen", 1)], idempotency_key="k1", remember=True)
    assert not again.created and again.order.id == first.order.id
    # A replay the hold script answers itself (the user's record of the key gone).
    await redis.delete(keys.user_idempotency("u1", "k1"))
    again = await engine.hold("e1", "u1", [("gen", 1)], idempotency_key="k1", remember=True)
    assert not again.created and again.order.id == first.order.id

    async def remembered() -> list[str]:
        members = await redis.zrange(keys.user_orders("u1"), 0, -1)
        return [m.decode() for m in members]

    for _ in range(100):  # the take-backs leave with the next batch: not awaited
        if await remembered() == [first.order.id]:
            break
        await asyncio.sleep(0.01)
    assert await remembered() == [first.order.id]
    assert [o.id for o in await engine.recent_user_orders("u1")] == [first.order.id]


# -- release_lock --------------------------------------------------------------------------


async def test_event_lock_is_exclusive_and_released_only_by_its_holder(
    engine: Engine, redis: Redis
) -> None:
    from engine.errors import EventBusy

    order: list[str] = []

    async def edit(name: str) -> None:
        async with engine.event_lock("e1", ttl_ms=5000):
            order.append(f"{name}-in")
            await asyncio.sleep(0.02)
            order.append(f"{name}-out")

    await asyncio.gather(*(edit(str(i)) for i in range(5)))
    assert all(
        order[i].endswith("-in")
        and order[i + 1].endswith("-out")
        and order[i][:-3] == order[i + 1][:-4]
        for i in range(0, 10, 2)
    )
    assert not await redis.exists(keys.edit_lock("e1"))
    # Someone else's lock is never released by a stale holder's token.
    await redis.set(keys.edit_lock("e1"), "other", px=5000)
    assert await engine.scripts.call("release_lock", [keys.edit_lock("e1")], ["mine"]) == 0
    assert await redis.get(keys.edit_lock("e1")) == b"other"
    with pytest.raises(EventBusy):
        async with engine.event_lock("e1", wait_s=0.1):
            pass


async def test_count_hit_counts_a_window_that_expires_on_its_own(
    engine: Engine, redis: Redis
) -> None:
    counts = await asyncio.gather(*(engine.count_hit("login", "1.2.3.4", 4242) for _ in range(5)))
    assert sorted(counts) == [1, 2, 3, 4, 5]
    key = keys.rate_limit("login", "1.2.3.4", 4242)
    assert await redis.get(key) == b"5"
    assert 0 < await redis.ttl(key) <= 120
    assert await engine.count_hit("login", "1.2.3.4", 4243, ttl_s=7) == 1  # a new window
    assert 0 < await redis.ttl(keys.rate_limit("login", "1.2.3.4", 4243)) <= 7
    assert await engine.count_hit("login", "5.6.7.8", 4242) == 1  # per subject
