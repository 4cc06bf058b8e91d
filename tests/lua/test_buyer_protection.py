"""Contract tests of the buyer-protection scripts: the buyer cap in hold_tickets and the
releases, extend_hold, join_waitlist, leave_waitlist, offer_waitlist, the waitlist
offers the releasing scripts (expire_hold, cancel_order, sweep_due, adjust_category) make,
and a removed category's waitlist closing with it (adjust_category) and the audit of it."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audit import Violation, audit
from engine.core import Engine, EngineConfig
from engine.errors import (
    BuyerLimit,
    CategoryInUse,
    CategoryNotFound,
    ExtensionRefused,
    LimitExceeded,
    NotInWaitlist,
    OrderNotFound,
    StockAvailable,
    WaitlistDuplicate,
)
from engine.models import CategorySpec
from engine.vocabulary import text

pytestmark = pytest.mark.asyncio


async def make_engine(redis: Redis, **config: int) -> Engine:
    engine = Engine(redis, EngineConfig(**config))
    await engine.start()
    return engine


async def stock(engine: Engine, event_id: str, cat: str) -> tuple[int, int, int, int]:
    s = await engine.stock(event_id)
    assert s is not None
    c = s.category(cat)
    assert c is not None
    return c.available, c.set_aside, c.held, c.sold


async def clean(engine: Engine, event_id: str) -> None:
    report = await audit(engine, [event_id])
    assert report.clean, report.violations


async def feed_of(redis: Redis, event_id: str, name: str) -> list[tuple[dict, str | None]]:
    out = []
    for _, f in await redis.xrange(keys.feed(event_id)):
        if f[b"event"].decode() == name:
            user = f.get(b"user")
            out.append((msgspec.json.decode(f[b"data"]), user.decode() if user else None))
    return out


# -- buyer cap -----------------------------------------------------------------------------


async def test_cap_counts_held_plus_sold_and_releases_give_it_back(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event(
        "e1", [CategorySpec(id="a", name="A", price=5, total=100)], max_per_buyer=4
    )
    first = await engine.hold("e1", "u1", [("a", 3)])
    with pytest.raises(BuyerLimit) as refused:
        await engine.hold("e1", "u1", [("a", 2)])
    assert refused.value.details["restantes"] == 1
    assert await stock(engine, "e1", "a") == (97, 0, 3, 0)  # the refusal changed nothing
    await engine.hold("e1", "u2", [("a", 4)])  # per buyer
    await engine.confirm(first.order.id, "u1", payment_method="card", transaction_id="t1")
    await engine.hold("e1", "u1", [("a", 1)])
    assert (await engine.buyer_counts("e1"))["u1"] == 4
    # Lowering the cap below what u1 has: their orders stay, new holds are refused.
    await engine.set_state("e1", "open", {}, max_per_buyer=2)
    with pytest.raises(BuyerLimit) as lowered:
        await engine.hold("e1", "u1", [("a", 1)])
    assert lowered.value.details["restantes"] == 0
    await clean(engine, "e1")


async def test_parallel_holds_of_one_buyer_stop_at_the_cap(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event(
        "e1", [CategorySpec(id="a", name="A", price=5, total=100)], max_per_buyer=7
    )
    results = await asyncio.gather(
        *(engine.hold("e1", "u1", [("a", 1)]) for _ in range(50)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 7
    assert all(isinstance(r, BuyerLimit) for r in results if isinstance(r, Exception))
    assert await stock(engine, "e1", "a") == (93, 0, 7, 0)
    await clean(engine, "e1")


async def test_expiry_and_sweep_give_the_allowance_back(redis: Redis) -> None:
    engine = await make_engine(redis, hold_ttl_ms=30)
    await engine.arm_event(
        "e1", [CategorySpec(id="a", name="A", price=5, total=10)], max_per_buyer=2
    )
    one = await engine.hold("e1", "u1", [("a", 1)])
    await engine.hold("e1", "u1", [("a", 1)])
    await asyncio.sleep(0.06)
    assert await engine.expire("e1", one.order.id)
    assert await engine.sweep_event("e1") == 1
    assert "u1" not in await engine.buyer_counts("e1")
    await engine.hold("e1", "u1", [("a", 2)])
    await clean(engine, "e1")


# -- extend_hold -----------------------------------------------------------------------------


async def test_extension_moves_deadline_timer_and_feed_within_caps(redis: Redis) -> None:
    engine = await make_engine(
        redis,
        hold_ttl_ms=10_000,
        hold_extensions=2,
        hold_extension_ms=6_000,
        hold_max_total_ms=20_000,
    )
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=10)])
    held = (await engine.hold("e1", "u1", [("a", 1)])).order
    with pytest.raises(OrderNotFound):
        await engine.extend(held.id, "u2")
    once = await engine.extend(held.id, "u1")
    assert once.expires_at == held.expires_at + 6_000
    assert await redis.zscore(keys.deadlines("e1"), held.id) == once.expires_at
    assert await redis.pttl(keys.timer("e1", held.id)) > 10_000
    status = await feed_of(redis, "e1", "order:status-change")
    assert status[-1][0]["orderId"] == held.id and status[-1][1] == "u1"
    twice = await engine.extend(held.id, "u1")
    assert twice.expires_at == held.created_at + 20_000  # cut to the total cap
    with pytest.raises(ExtensionRefused) as limit:
        await engine.extend(held.id, "u1")
    assert limit.value.details["reason"] == "limit"
    other = (await engine.hold("e1", "u1", [("a", 1)])).order
    await engine.confirm(other.id, "u1", payment_method="card", transaction_id="t")
    with pytest.raises(ExtensionRefused) as confirmed:
        await engine.extend(other.id, "u1")
    assert confirmed.value.details["reason"] == "not_reserved"
    await clean(engine, "e1")


async def test_extension_cap_and_contested(redis: Redis) -> None:
    engine = await make_engine(
        redis,
        hold_ttl_ms=10_000,
        hold_extensions=5,
        hold_extension_ms=1_000,
        hold_max_total_ms=10_000,
    )
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=1)])
    held = (await engine.hold("e1", "u1", [("a", 1)])).order
    with pytest.raises(ExtensionRefused) as cap:
        await engine.extend(held.id, "u1")
    assert cap.value.details["reason"] == "cap"
    engine.config = EngineConfig(
        hold_ttl_ms=10_000, hold_extensions=5, hold_extension_ms=1_000, hold_max_total_ms=60_000
    )
    await engine.join_waitlist("e1", "a", "u2", 1)
    with pytest.raises(ExtensionRefused) as contested:
        await engine.extend(held.id, "u1")
    assert contested.value.details["reason"] == "contested"
    await engine.leave_waitlist("e1", "a", "u2")
    await redis.set(keys.queue_waiting("e1"), 3)  # the admission queue's hook
    with pytest.raises(ExtensionRefused) as queued:
        await engine.extend(held.id, "u1")
    assert queued.value.details["reason"] == "contested"
    await redis.delete(keys.queue_waiting("e1"))
    assert (await engine.extend(held.id, "u1")).expires_at == held.expires_at + 1_000


# -- waitlist --------------------------------------------------------------------------------


async def test_join_refusals_change_nothing(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event(
        "e1", [CategorySpec(id="a", name="A", price=5, total=2)], max_per_buyer=3
    )
    with pytest.raises(StockAvailable):
        await engine.join_waitlist("e1", "a", "u2", 1)
    await engine.hold("e1", "u1", [("a", 2)])
    with pytest.raises(LimitExceeded):
        await engine.join_waitlist("e1", "a", "u2", 11)
    with pytest.raises(BuyerLimit):
        await engine.join_waitlist("e1", "a", "u1", 2)
    entry = await engine.join_waitlist("e1", "a", "u2", 1)
    assert (entry.status, entry.position) == ("ESPERANDO", 1)
    with pytest.raises(WaitlistDuplicate):
        await engine.join_waitlist("e1", "a", "u2", 1)
    assert (await engine.join_waitlist("e1", "a", "u3", 1)).position == 2
    with pytest.raises(NotInWaitlist):
        await engine.leave_waitlist("e1", "a", "u9")
    s = await engine.stock("e1")
    assert s is not None and s.categories[0].waiting == 2
    await clean(engine, "e1")


async def test_cancel_offers_returned_tickets_to_the_head_in_order(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=3)])
    held = (await engine.hold("e1", "u1", [("a", 3)])).order
    for user in ("u2", "u3"):
        await engine.join_waitlist("e1", "a", user, 1)
    await engine.cancel(held.id, "u1")
    # Two offers (FIFO), the third ticket back on sale: the list is empty now.
    assert await stock(engine, "e1", "a") == (1, 0, 2, 0)
    offers = await feed_of(redis, "e1", "waitlist:offer")
    assert [user for _, user in offers] == ["u2", "u3"]
    for data, user in offers:
        order = await engine.get_order(data["orderId"])
        assert order is not None and order.user_id == user and order.status == "RESERVED"
        assert await redis.exists(keys.timer("e1", order.id))
        assert await redis.zscore(keys.deadlines("e1"), order.id) == order.expires_at
    entries = await engine.waitlist_entries("e1", "u2")
    assert entries[0].status == "OFERTADO" and entries[0].order_id == offers[0][0]["orderId"]
    # Stock never showed the returned tickets as available before the offers took them.
    stock_updates = [d["nuevoStock"] for d, _ in await feed_of(redis, "e1", "ticket:stock-update")]
    assert stock_updates[-1] == 1 and 3 not in stock_updates[1:] and 2 not in stock_updates[1:]
    await engine.confirm(offers[0][0]["orderId"], "u2", payment_method="card", transaction_id="x")
    assert (await engine.waitlist_entries("e1", "u2"))[0].status == "COMPRADO"
    await clean(engine, "e1")


async def test_an_offer_not_taken_goes_down_the_list(redis: Redis) -> None:
    engine = await make_engine(redis, offer_ttl_ms=40)
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=1)])
    held = (await engine.hold("e1", "u1", [("a", 1)])).order
    for user in ("u2", "u3", "u4"):
        await engine.join_waitlist("e1", "a", user, 1)
    await engine.cancel(held.id, "u1")
    first = (await engine.waitlist_entries("e1", "u2"))[0]
    assert first.status == "OFERTADO" and first.order_id
    await asyncio.sleep(0.06)
    assert await engine.expire("e1", first.order_id)  # the timer's notification path
    assert (await engine.waitlist_entries("e1", "u2"))[0].status == "CADUCADO"
    second = (await engine.waitlist_entries("e1", "u3"))[0]
    assert second.status == "OFERTADO"
    await asyncio.sleep(0.06)
    assert await engine.sweep_event("e1") == 1  # the sweeper's path
    assert (await engine.waitlist_entries("e1", "u4"))[0].status == "OFERTADO"
    # Leaving with an offer out releases it to the next: nobody left, so back on sale.
    await engine.leave_waitlist("e1", "a", "u4")
    assert (await engine.waitlist_entries("e1", "u4"))[0].status == "RETIRADO"
    assert await stock(engine, "e1", "a") == (1, 0, 0, 0)
    await clean(engine, "e1")


async def test_capped_buyers_are_skipped_and_heads_accumulate(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event(
        "e1", [CategorySpec(id="a", name="A", price=5, total=4)], max_per_buyer=3
    )
    one = (await engine.hold("e1", "u1", [("a", 1)])).order
    two = (await engine.hold("e1", "u1", [("a", 1)])).order
    await engine.hold("e1", "u5", [("a", 2)])
    await engine.join_waitlist("e1", "a", "u2", 2)  # the head wants two
    await engine.join_waitlist("e1", "a", "u3", 1)
    await engine.cancel(one.id, "u1")
    # One ticket back: set aside for the head (strict FIFO), not on sale, not to u3.
    assert await stock(engine, "e1", "a") == (0, 1, 3, 0)
    await clean(engine, "e1")
    await engine.cancel(two.id, "u1")
    assert (await engine.waitlist_entries("e1", "u2"))[0].status == "OFERTADO"
    assert (await engine.waitlist_entries("e1", "u3"))[0].status == "ESPERANDO"
    assert await stock(engine, "e1", "a") == (0, 0, 4, 0)
    await clean(engine, "e1")


async def test_a_raised_total_goes_to_the_waitlist_and_offers_past_the_slots(
    redis: Redis,
) -> None:
    engine = await make_engine(redis)
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=1)])
    await engine.hold("e1", "u0", [("a", 1)])
    users = [f"u{i}" for i in range(1, 11)]
    for user in users:
        await engine.join_waitlist("e1", "a", user, 1)
    # Ten tickets more: more offers than one call's slots (keys.OFFER_SLOTS).
    assert await engine.adjust_category("e1", "a", 11, price=5, name="A") == 0
    offered = [u for _, u in await feed_of(redis, "e1", "waitlist:offer")]
    assert offered == users
    assert await stock(engine, "e1", "a") == (0, 0, 11, 0)
    # The new total is published before the offers, with the tickets set aside (none on
    # sale to others); no stock entry follows, since none went on sale.
    updates = [d["cambios"]["categoria"] for d, _ in await feed_of(redis, "e1", "event:update")]
    assert [(u["cantidadTotal"], u["disponible"]) for u in updates] == [(11, 0)]
    await clean(engine, "e1")


# -- a removed category's waitlist ---------------------------------------------------------


async def closed_to(redis: Redis, event_id: str) -> list[tuple[str, str | None]]:
    """(category, user) of each waitlist:closed entry of the feed, in order."""
    out = []
    for data, user in await feed_of(redis, event_id, "waitlist:closed"):
        assert data.pop("motivo") == "category_removed" and data.pop("eventoId") == event_id
        assert list(data) == ["categoriaId"]
        out.append((data["categoriaId"], user))
    return out


async def test_removing_a_category_closes_a_long_waitlist_in_bounded_calls(
    redis: Redis,
) -> None:
    engine = await make_engine(redis)
    await engine.arm_event("e1", [CategorySpec(id=c, name=c, price=5, total=0) for c in "ab"])
    users = [f"u{i}" for i in range(250)]
    for user in users:
        await engine.join_waitlist("e1", "a", user, 1)
    for user in ("v1", "v2", "v3"):
        await engine.join_waitlist("e1", "b", user, 1)
    # One call: the category is gone at once and the first 100 waiters are told.
    assert await engine._adjust("e1", "a", -1, 0, "") == (2, "150")
    stock = await engine.stock("e1")
    assert stock is not None and [c.id for c in stock.categories] == ["b"]
    assert await closed_to(redis, "e1") == [("a", u) for u in users[:100]]
    with pytest.raises(CategoryNotFound):  # nobody can join the closing list
        await engine.join_waitlist("e1", "a", "late", 1)
    with pytest.raises(CategoryNotFound):  # nor leave it: the removal closes it
        await engine.leave_waitlist("e1", "a", "u200")
    report = await audit(engine, ["e1"])
    assert report.violations == [
        Violation("e1", None, "150 waitlist entries wait in categories that are not armed")
    ]
    # The removal goes on where it stopped (a retried DELETE does the same).
    await engine.remove_category("e1", "a")
    assert await closed_to(redis, "e1") == [("a", u) for u in users]
    queued = [text(m) for m in await redis.zrange(keys.waitlist_queue("e1"), 0, -1)]
    assert [m.split(":")[0] for m in queued] == ["b"] * 3
    fields = {text(f) for f in await redis.hkeys(keys.waitlist("e1"))}
    assert {f for f in fields if f.startswith("u:")} == {"u:v1:b", "u:v2:b", "u:v3:b"}
    assert len(fields) == 1 + 3 * 2  # seq, and b's three entries
    inv = {text(k): text(v) for k, v in (await redis.hgetall(keys.inventory("e1"))).items()}
    assert [f for f in inv if f.endswith(":a")] == [] and inv["wl"] == "3"
    places = [(await engine.waitlist_entries("e1", u))[0].position for u in ("v1", "v2", "v3")]
    assert places == [1, 2, 3]
    with pytest.raises(CategoryNotFound):
        await engine.remove_category("e1", "a")
    await clean(engine, "e1")


async def test_a_category_with_an_offer_out_is_not_removed(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event("e1", [CategorySpec(id="a", name="A", price=5, total=1)])
    held = (await engine.hold("e1", "u1", [("a", 1)])).order
    await engine.join_waitlist("e1", "a", "u2", 1)
    await engine.join_waitlist("e1", "a", "u3", 1)
    await engine.cancel(held.id, "u1")  # offered to u2; u3 waits
    before = await redis.hgetall(keys.waitlist("e1")), await engine.stock("e1")
    with pytest.raises(CategoryInUse) as refused:
        await engine.remove_category("e1", "a")
    assert refused.value.details["committed"] == 1
    assert (await redis.hgetall(keys.waitlist("e1")), await engine.stock("e1")) == before
    assert await closed_to(redis, "e1") == []
    await clean(engine, "e1")


async def test_audit_finds_what_a_removed_category_left_of_its_waitlist(redis: Redis) -> None:
    engine = await make_engine(redis)
    await engine.arm_event("e1", [CategorySpec(id=c, name=c, price=5, total=0) for c in "ab"])
    for user in ("u1", "u2"):
        await engine.join_waitlist("e1", "a", user, 1)
    await engine.join_waitlist("e1", "b", "u3", 1)
    await clean(engine, "e1")
    # What the removal did before it closed the waitlist: the category's stock fields and
    # its place in "cats" went, its waiting count, the total and the list stayed.
    inv = keys.inventory("e1")
    await redis.hdel(inv, "t:a", "a:a", "h:a", "s:a", "p:a", "n:a")
    await redis.hset(inv, "cats", '["b"]')
    await redis.hincrby(inv, "w:b", 1)  # and a count that is not its list's length
    report = await audit(engine, ["e1"])
    assert report.violations == [
        Violation("e1", "b", "2 counted waiting but 1 in its waitlist"),
        Violation("e1", None, "waitlist total 3 but its categories count 2"),
        Violation("e1", None, "2 waitlist entries wait in categories that are not armed"),
        Violation("e1", "a", "fields of a category that is not armed: ['w:a']"),
    ]
    await redis.hincrby(inv, "w:b", -1)
    # Removing the category again closes what was left, counters included.
    await engine.remove_category("e1", "a")
    assert await closed_to(redis, "e1") == [("a", "u1"), ("a", "u2")]
    assert await redis.hget(inv, "wl") == b"1" and not await redis.hexists(inv, "w:a")
    await clean(engine, "e1")
