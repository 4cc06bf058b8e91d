"""The invariant check behind ``onsale audit``.

Per event and category: ``available + held + sold == total``, all >= 0. Beyond the
counters, the live orders must agree with them: ``held`` equals the tickets of RESERVED
orders, ``sold`` equals the tickets of CONFIRMED orders (for orders Redis still holds),
and every RESERVED order has a deadline in the sorted set. ``available`` is what is on
sale; tickets set aside for a category's waitlist (returned, about to be offered) count
beside it: ``available + set_aside + held + sold == total``. Waitlist offers are RESERVED
orders, so they count as held. The buyer counts (the buyer cap) add up to held + sold.

The waitlist: each category's waiting count is the length of its list, the event's total
of waiters is their sum, and nothing waits in (or is counted for) a category that is not
armed: a removed category takes its waitlist with it.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from engine import keys
from engine.core import Engine
from engine.models import EventStock
from engine.vocabulary import text

# Inventory fields kept per category (lua/lib/common.lua): ``<prefix>:<categoryId>``.
CATEGORY_FIELDS = ("t", "a", "h", "s", "p", "n", "low", "r", "w")


class Violation(msgspec.Struct):
    event_id: str
    category_id: str | None
    problem: str


class AuditReport(msgspec.Struct):
    events: int = 0
    categories: int = 0
    orders: int = 0
    violations: list[Violation] = msgspec.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


async def audit(engine: Engine, event_ids: list[str] | None = None) -> AuditReport:
    report = AuditReport()
    for event_id in event_ids if event_ids is not None else await engine.event_ids():
        stock = await engine.stock(event_id)
        if stock is None:
            report.violations.append(Violation(event_id, None, "listed but not armed"))
            continue
        report.events += 1
        orders = await engine.orders_of_event(event_id)
        report.orders += len(orders)
        held: Counter[str] = Counter()
        sold: Counter[str] = Counter()
        due = {
            (m.decode() if isinstance(m, bytes) else m)
            for m in await engine.redis.zrange(keys.deadlines(event_id), 0, -1)
        }
        for order in orders:
            bucket = {"RESERVED": held, "CONFIRMED": sold}.get(order.status)
            if bucket is not None:
                for t in order.tickets:
                    bucket[t.category_id] += t.quantity
            if order.status == "RESERVED" and order.id not in due:
                report.violations.append(
                    Violation(event_id, None, f"held order {order.id} has no deadline")
                )
        for c in stock.categories:
            report.categories += 1
            problems = []
            if min(c.available, c.held, c.sold, c.total, c.set_aside, c.waiting) < 0:
                problems.append(f"negative counter: {c}")
            if c.available + c.set_aside + c.held + c.sold != c.total:
                problems.append(
                    f"available {c.available} + set aside {c.set_aside} + held {c.held}"
                    f" + sold {c.sold} != total {c.total}"
                )
            if c.set_aside and not c.waiting:
                problems.append(f"{c.set_aside} tickets set aside for an empty waitlist")
            if held[c.id] != c.held:
                problems.append(f"held counter {c.held} but RESERVED orders hold {held[c.id]}")
            if sold[c.id] > c.sold:
                problems.append(f"sold counter {c.sold} but CONFIRMED orders hold {sold[c.id]}")
            report.violations += [Violation(event_id, c.id, p) for p in problems]
        report.violations += [
            Violation(event_id, c, p) for c, p in await _waitlist_problems(engine, stock)
        ]
        counted = sum((await engine.buyer_counts(event_id)).values())
        committed = sum(c.held + c.sold for c in stock.categories)
        if counted != committed:
            report.violations.append(
                Violation(event_id, None, f"buyer counts add up to {counted}, not {committed}")
            )
    return report


async def _waitlist_problems(engine: Engine, stock: EventStock) -> list[tuple[str | None, str]]:
    """The waitlist's counters against its lists, and what is left of categories that are
    not armed (O(categories) reads: the lists are counted, not read)."""
    event_id = stock.event_id
    queue = keys.waitlist_queue(event_id)
    pipe = engine.redis.pipeline(transaction=False)
    pipe.hgetall(keys.inventory(event_id))
    pipe.zcard(queue)
    for c in stock.categories:
        pipe.zlexcount(queue, f"[{c.id}:", f"[{c.id}:~")
    inv, listed, *lengths = await pipe.execute()
    fields = {text(k): text(v) for k, v in inv.items()}
    problems: list[tuple[str | None, str]] = []
    for c, length in zip(stock.categories, lengths, strict=True):
        if int(length) != c.waiting:
            problems.append((c.id, f"{c.waiting} counted waiting but {length} in its waitlist"))
    waiting = sum(c.waiting for c in stock.categories)
    total = int(fields.get("wl", 0))
    if total != waiting:
        problems.append((None, f"waitlist total {total} but its categories count {waiting}"))
    stray = int(listed) - sum(int(n) for n in lengths)
    if stray:
        problems.append((None, f"{stray} waitlist entries wait in categories that are not armed"))
    armed = {c.id for c in stock.categories}
    left: dict[str, list[str]] = {}
    for name in fields:
        prefix, sep, category = name.partition(":")
        if sep and prefix in CATEGORY_FIELDS and category not in armed:
            left.setdefault(category, []).append(name)
    for category, names in sorted(left.items()):
        problems.append((category, f"fields of a category that is not armed: {sorted(names)}"))
    return problems
