"""Sold-out refusals from the process's own stock (api/services/stock_gate.py): no hold
script once the feed says a category is sold out; a cancel brings the script back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from api.security import Principal, RateLimiter
from api.services.errors import Conflict
from api.services.orders import OrderService
from api.services.stock_gate import StockGate
from engine.core import Engine
from engine.errors import CategoryNotFound, IdempotencyKeyReused
from engine.models import CategorySpec

BUYER = Principal(id="u1", role="COMPRADOR")


class CountingEngine:
    """The engine, with its hold script calls counted."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.holds = 0

    async def hold(self, *args: Any, **kwargs: Any) -> Any:
        self.holds += 1
        return await self._engine.hold(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the gate did not catch up"
        await asyncio.sleep(0.01)


@pytest.fixture
async def world(redis: Redis, engine: Engine) -> Any:
    await engine.arm_event("ge", [CategorySpec(id="c", name="Campo", price=10, total=2)])
    stop = asyncio.Event()
    counting = CountingEngine(engine)
    gate = StockGate(redis)
    task = asyncio.create_task(gate.run(stop))
    service = OrderService(
        counting,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        limiter=RateLimiter(engine, 0),
        gate=gate,
    )
    yield service, counting, gate
    stop.set()
    await task


async def _refusal(service: OrderService) -> Conflict:
    with pytest.raises(Conflict) as refused:
        await service.hold(BUYER, "ge", [("c", 1)])
    return refused.value


async def test_sold_out_is_refused_without_a_script_call_and_a_cancel_reopens(
    world: Any,
) -> None:
    service, counting, gate = world
    first = await service.hold(BUYER, "ge", [("c", 1)])
    await service.hold(BUYER, "ge", [("c", 1)])
    by_script = await _refusal(service)  # the script refuses: the category is sold out
    assert counting.holds == 3
    await _until(lambda: gate.check("ge", [("c", 1)]) is not None)
    calls = counting.holds
    for _ in range(20):
        by_gate = await _refusal(service)
        # The same problem as the script's refusal (status, code, message, fields).
        assert (type(by_gate), by_gate.code, by_gate.message, by_gate.extra) == (
            type(by_script),
            by_script.code,
            by_script.message,
            by_script.extra,
        )
    assert counting.holds == calls, "a sold-out refusal called the hold script"
    assert gate.refused >= 20

    await service.cancel(BUYER, first.order.id)
    await _until(lambda: gate.check("ge", [("c", 1)]) is None)
    again = await service.hold(BUYER, "ge", [("c", 1)])
    assert again.created
    assert counting.holds == calls + 1


async def test_what_the_gate_does_not_know_goes_to_the_script(world: Any) -> None:
    service, counting, gate = world
    await service.hold(BUYER, "ge", [("c", 2)])
    await _refusal(service)
    await _until(lambda: gate.check("ge", [("c", 1)]) is not None)
    calls = counting.holds
    # An unknown category, a closed event: the script answers.
    with pytest.raises(Exception):  # noqa: B017 (category not found, by the script)
        await service.hold(BUYER, "ge", [("nope", 1)])
    assert counting.holds == calls + 1


async def test_a_keyed_hold_is_refused_by_the_gate_unless_it_may_be_a_replay(
    world: Any,
) -> None:
    """The page sends an Idempotency-Key with every hold. After the sell-out a key never
    used is refused from the gate (one read of the key's records, no hold script); a key
    that made an order before the sell-out is the engine's to answer: the replay."""
    service, counting, gate = world
    first = await service.hold(BUYER, "ge", [("c", 1)], idempotency_key="k-early")
    await service.hold(BUYER, "ge", [("c", 1)])
    by_script = await _refusal(service)
    await _until(lambda: gate.check("ge", [("c", 1)]) is not None)
    calls, refused = counting.holds, gate.refused
    for i in range(10):
        with pytest.raises(Conflict) as keyed:
            await service.hold(BUYER, "ge", [("c", 1)], idempotency_key=f"k-new-{i}")
        assert (keyed.value.code, keyed.value.extra) == (by_script.code, by_script.extra)
    assert counting.holds == calls, "a keyed sold-out refusal called the hold script"
    assert gate.refused == refused + 10
    replay = await service.hold(BUYER, "ge", [("c", 1)], idempotency_key="k-early")
    assert not replay.created and replay.order.id == first.order.id
    assert counting.holds == calls + 1
    # The same key with another request is still the engine's answer (reused), not sold out.
    with pytest.raises(IdempotencyKeyReused):
        await service.hold(BUYER, "ge", [("c", 2)], idempotency_key="k-early")


async def test_a_category_change_makes_the_gate_forget_so_it_never_refuses_from_stale_stock(
    world: Any, engine: Engine
) -> None:
    """Created, renamed, resized or removed (lua/adjust_category publishes event:update):
    the gate drops what it knew of the event, and the hold after the change is the
    script's: a raised total sells, a renamed category is named by its new name, a
    removed one is the script's 404, never a sold_out from the stock before the change."""
    service, counting, gate = world

    async def sold_out_known() -> None:
        await _until(lambda: gate.check("ge", [("c", 1)]) is not None)

    async def forgotten() -> None:
        await _until(lambda: "ge" not in gate.known)

    await service.hold(BUYER, "ge", [("c", 2)])
    await _refusal(service)
    await sold_out_known()

    # Renamed (the same total: no stock entry at all): the next refusal is the script's,
    # with the new name, and the gate's own refusals after it use that name too.
    await engine.adjust_category("ge", "c", 2, price=12, name="Pista")
    await forgotten()
    calls = counting.holds
    refused = await _refusal(service)
    assert counting.holds == calls + 1, "refused from the stock before the rename"
    assert refused.extra["categoriaNombre"] == "Pista", refused.extra
    await sold_out_known()
    assert (await _refusal(service)).extra["categoriaNombre"] == "Pista"

    # A raised total: the hold the stale stock would refuse goes to the script and sells.
    await engine.adjust_category("ge", "c", 5, price=12, name="Pista")
    await forgotten()
    calls = counting.holds
    raised = await service.hold(BUYER, "ge", [("c", 3)])
    assert raised.created and counting.holds == calls + 1

    # A new category, then its removal: while the gate knows it as sold out (0 of 0), a
    # hold for it is refused from the gate; once removed, it is the script's 404.
    await engine.adjust_category("ge", "d", 0, price=1, name="Palco")
    await forgotten()
    await _refusal(service)  # c sold out again, by the script: the gate reads the event
    await _until(lambda: gate.check("ge", [("d", 1)]) is not None)
    await engine.remove_category("ge", "d")
    await forgotten()
    calls = counting.holds
    with pytest.raises(CategoryNotFound):
        await service.hold(BUYER, "ge", [("d", 1)])
    assert counting.holds == calls + 1
