"""Contract tests of the admission-queue scripts (SPEC 10.1): configure, join, touch,
leave, the opening (begin/place/finish), admit, lost heartbeats, delete, and the hold
script's check and consumption of the admission token."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from engine import keys
from engine.audit import audit
from engine.core import Engine
from engine.errors import (
    AdmissionExpired,
    AdmissionInvalid,
    AdmissionRequired,
    AdmissionUsed,
    ExtensionRefused,
    NotInQueue,
    QueueAlreadyOpen,
    QueueNotFound,
    QueueNotStarted,
    SoldOut,
)
from engine.models import CategorySpec
from engine.queue import QueueEngine, QueueSettings, commitment_of, opening_order

pytestmark = pytest.mark.asyncio


async def _queue(engine: Engine, total: int = 4, **kw: object) -> QueueEngine:
    await engine.arm_event("qe", [CategorySpec(id="c", name="C", price=10, total=total)])
    q = QueueEngine(engine)
    settings = {"opens_at_ms": int(time.time() * 1000) + 300, "tickets_per_admission": 1, **kw}
    await q.configure("qe", QueueSettings(**settings))  # type: ignore[arg-type]
    return q


async def _open(q: QueueEngine) -> None:
    await asyncio.sleep(0.35)
    assert await q.open_if_due("qe", "me") is not None


async def test_configure_join_and_pre_queue(engine: Engine, redis: Redis) -> None:
    q = await _queue(engine)
    first = await q.join("qe", "u1")
    assert first.created and first.status == "ESPERANDO" and first.position is None
    again = await q.join("qe", "u1")
    assert not again.created  # one place per buyer
    info = await q.info("qe")
    assert info and info.state == "PRE" and info.waiting == 1 and info.seed is None
    assert await redis.get(keys.queue_waiting("qe")) == b"1"  # the extension hook
    with pytest.raises(QueueNotFound):
        await q.join("nope", "u1")


async def test_pre_queue_not_started_and_abre_en_fixed_once_open(engine: Engine) -> None:
    await engine.arm_event("qe", [CategorySpec(id="c", name="C", price=10, total=4)])
    q = QueueEngine(engine)
    later = int(time.time() * 1000) + 3_600_000
    await q.configure("qe", QueueSettings(opens_at_ms=later, pre_queue_minutes=1))
    with pytest.raises(QueueNotStarted):
        await q.join("qe", "u1")
    q2 = await _queue(engine)
    await q2.join("qe", "u1")
    await _open(q2)
    info = await q2.info("qe")
    assert info is not None
    with pytest.raises(QueueAlreadyOpen):
        await q2.configure("qe", QueueSettings(opens_at_ms=info.opens_at_ms + 1))


async def test_opening_orders_by_hmac_and_reveals_the_seed(engine: Engine) -> None:
    q = await _queue(engine, total=0)
    users = [f"user{i}" for i in range(50)]
    for u in users:
        await q.join("qe", u)
    await q.leave("qe", "user7")  # left during the pre-queue: not in the join list
    before = await q.info("qe")
    assert before and before.seed is None
    await _open(q)
    info = await q.info("qe")
    assert info and info.state in ("ABIERTA", "AGOTADA") and info.seed
    assert commitment_of(info.seed) == before.commitment
    order = opening_order(info.seed, await q.join_list("qe"))
    assert "user7" not in order
    placed = await q.opening_places("qe")
    assert [placed[u] for u in order] == list(range(1, len(order) + 1))
    late = await q.join("qe", "late")
    assert late.position == len(order) + 1  # behind the pre-queue


async def test_admit_is_exact_with_stock_and_tickets_per_admission(engine: Engine) -> None:
    q = await _queue(engine, total=5, tickets_per_admission=2)
    for i in range(10):
        await q.join("qe", f"u{i}")
    await _open(q)
    result = await q.admit("qe")
    assert result.admitted == 3 and result.outstanding == 3  # 5 - 2*2 > 0, 5 - 3*2 <= 0
    assert (await q.admit("qe")).admitted == 0
    info = await q.info("qe")
    assert info and info.waiting == 7 and info.admitted == 3


async def test_admissions_per_minute_caps_the_rate(engine: Engine) -> None:
    q = await _queue(engine, total=100, admissions_per_minute=2)
    for i in range(6):
        await q.join("qe", f"u{i}")
    await _open(q)
    assert (await q.admit("qe")).admitted == 2
    assert (await q.admit("qe")).admitted == 0


async def test_hold_needs_and_consumes_the_token(engine: Engine) -> None:
    q = await _queue(engine, total=2)
    await q.join("qe", "a")
    await q.join("qe", "b")
    await _open(q)
    await q.admit("qe")
    places = await q.places("qe", ["a", "b"])
    token_a = places[0].token if places[0] else None
    token_b = places[1].token if places[1] else None
    assert token_a and token_b
    with pytest.raises(AdmissionRequired):
        await engine.hold("qe", "a", [("c", 1)])
    with pytest.raises(AdmissionInvalid):
        await engine.hold("qe", "a", [("c", 1)], admission_token=token_b)
    with pytest.raises(SoldOut):  # refused for stock: the token stays unused
        await engine.hold("qe", "a", [("c", 3)], admission_token=token_a)
    held = await engine.hold("qe", "a", [("c", 1)], admission_token=token_a)
    assert held.created
    with pytest.raises(AdmissionUsed):
        await engine.hold("qe", "a", [("c", 1)], admission_token=token_a)
    info = await q.info("qe")
    assert info and info.converted == 1 and info.outstanding == 1
    assert (await audit(engine)).clean


async def test_expired_admission_gives_its_share_back(engine: Engine) -> None:
    q = await _queue(engine, total=1, admission_ms=200)
    await q.join("qe", "a")
    await q.join("qe", "b")
    await _open(q)
    assert (await q.admit("qe")).admitted == 1
    first = await q.places("qe", ["a", "b"])
    admitted = next(p for p in first if p and p.status == "ADMITIDO")
    await asyncio.sleep(0.3)
    result = await q.admit("qe")
    assert result.expired == 1 and result.admitted == 1  # the next in line
    with pytest.raises(AdmissionExpired):
        await engine.hold("qe", admitted.user_id, [("c", 1)], admission_token=admitted.token)
    again = await q.join("qe", admitted.user_id)  # lost: back of the line
    assert again.created and again.status == "ESPERANDO"


async def test_sold_out_marks_everyone_and_reopens(engine: Engine, redis: Redis) -> None:
    q = await _queue(engine, total=1)
    for u in ("a", "b", "c"):
        await q.join("qe", u)
    await _open(q)
    await q.admit("qe")
    a = next(p for p in await q.places("qe", ["a", "b", "c"]) if p and p.token)
    order = await engine.hold("qe", a.user_id, [("c", 1)], admission_token=a.token)
    assert (await q.admit("qe")).admitted == 0  # available 0, held 1: wait
    await engine.confirm(order.order.id, a.user_id, payment_method="card", transaction_id="t1")
    result = await q.admit("qe")
    assert result.state == "AGOTADA"
    rest = [p for p in await q.places("qe", ["a", "b", "c"]) if p and p.user_id != a.user_id]
    assert {p.status for p in rest} == {"AGOTADO"}
    names = [f[b"event"] for _, f in await redis.xrange(keys.feed("qe"))]
    assert b"queue:sold-out" in names and b"queue:admitted" in names
    await engine.adjust_category("qe", "c", 2, price=10, name="C")  # stock comes back
    result = await q.admit("qe")
    assert result.state == "ABIERTA" and result.admitted == 1


async def test_lost_heartbeats_leave_the_count(engine: Engine) -> None:
    q = await _queue(engine, total=0, heartbeat_s=1)
    await q.join("qe", "a")
    await q.join("qe", "b")
    await asyncio.sleep(1.2)
    await q.places("qe", ["b"])  # b's heartbeat
    await asyncio.sleep(1.0)
    assert await q.expire_lost("qe") == 1
    places = await q.places("qe", ["a", "b"])
    assert places[0] and places[0].status == "PERDIDO"
    assert places[1] and places[1].status == "ESPERANDO"
    info = await q.info("qe")
    assert info and info.waiting == 1 and info.lost == 1


async def test_leave_and_delete(engine: Engine, redis: Redis) -> None:
    q = await _queue(engine)
    await q.join("qe", "a")
    await q.leave("qe", "a")
    with pytest.raises(NotInQueue):
        await q.leave("qe", "a")
    assert await redis.get(keys.queue_waiting("qe")) == b"0"
    assert await q.delete("qe")
    assert not await q.delete("qe")
    assert await q.info("qe") is None
    assert not await redis.exists(*keys.queue_keys("qe"))
    held = await engine.hold("qe", "a", [("c", 1)])  # open to all again
    assert held.created


async def test_waiting_buyers_make_a_hold_extension_contested(engine: Engine) -> None:
    await engine.arm_event("qx", [CategorySpec(id="c", name="C", price=10, total=4)])
    held = await engine.hold("qx", "early", [("c", 1)])  # before the queue existed
    q = QueueEngine(engine)
    opens = int(time.time() * 1000) + 60_000
    await q.configure("qx", QueueSettings(opens_at_ms=opens))
    await q.join("qx", "waiter")
    with pytest.raises(ExtensionRefused) as refused:
        await engine.extend(held.order.id, "early")
    assert refused.value.details["reason"] == "contested"
    await q.leave("qx", "waiter")
    assert (await engine.extend(held.order.id, "early")).expires_at > held.order.expires_at
