"""Read-your-writes for the store's order views: the orders the writer has not stored yet,
laid over the store's rows and figures.

A confirm answers once Redis committed it (``CONFIRM_DURABILITY=redis``); the writer
stores it a moment later. Until then the order lives in an unacknowledged entry of its
event's order log. :func:`overlay` reads those entries (bounded by the writer's lag, not
by the traffic: :func:`persistence.writer.unpersisted_orders`) and, for each order, the
copy that wins (``persistence.store.supersedes``: the log's newer copy, or the store's
when it is the sale). The store is then read *without* those orders
(``exclude_ids``) and the winning copies are added back, so an order counts once,
whichever side of the writer it is on. Reading the log before the store means an order
stored in between is seen, never missed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from api.services.errors import Unavailable
from engine.core import Engine
from engine.models import Order
from engine.vocabulary import OrderStatus
from persistence.aio import AsyncStore
from persistence.store import CategorySales, OrderStats, money, supersedes, ticket_count
from persistence.writer import BacklogTooLarge, unpersisted_orders

CONFIRMED = OrderStatus.CONFIRMED.value


def _rank(order: Order) -> tuple[int, str]:
    """The store's listing order: newest first, ties by id."""
    return order.created_at, order.id


async def overlay(
    engine: Engine, store: AsyncStore, event_ids: Sequence[str], *, complete: bool = False
) -> dict[str, Order]:
    """{order id: the copy to show} for every order of ``event_ids`` the writer may not
    have stored yet (usually none: the writer keeps up). With ``complete`` (order lists
    and exports, which must not look whole while missing orders), a writer further
    behind than an overlay reads is a 503 ``store_behind``; figures take the newest
    entries instead."""
    try:
        logged = await unpersisted_orders(engine.redis, event_ids, strict=complete)
    except BacklogTooLarge as e:
        raise Unavailable(
            f"the order store is at least {e.behind} orders behind Redis: retry in a few seconds",
            code="store_behind",
            retry_after=2,
        ) from None
    if not logged:
        return {}
    stored = {o.id: o for o in await store.get_orders([o.id for o in logged])}
    copies: dict[str, Order] = {}
    for order in logged:
        known = stored.get(order.id)
        copies[order.id] = order if known is None or supersedes(order, known) else known
    return copies


async def list_orders(
    engine: Engine,
    store: AsyncStore,
    page: int,
    limit: int,
    *,
    status: str | None = None,
    event_id: str | None = None,
) -> tuple[list[Order], int]:
    """One page of orders (newest first) and the total, as :meth:`AsyncStore.list_orders`,
    with the orders not stored yet in their place. Exact: the store is read as deep as
    the page (``page * limit`` rows, only while some order is not stored yet)."""
    event_ids = [event_id] if event_id is not None else await engine.event_ids()
    copies = await overlay(engine, store, event_ids, complete=True)
    if not copies:
        return await store.list_orders(page, limit, status=status, event_id=event_id)
    extra = [o for o in copies.values() if status is None or o.status == status]
    rows, total = await store.list_orders(
        1, page * limit, status=status, event_id=event_id, exclude_ids=list(copies)
    )
    # The first page * limit of the merge are exact: the store gave its first that many.
    merged = sorted([*rows, *extra], key=_rank, reverse=True)
    return merged[(page - 1) * limit : page * limit], total + len(extra)


async def order_stats(engine: Engine, store: AsyncStore) -> OrderStats:
    """:meth:`AsyncStore.order_stats` with the orders not stored yet (armed events)."""
    copies = await overlay(engine, store, await engine.event_ids())
    stats = await store.order_stats(exclude_ids=list(copies) or None)
    if not copies:
        return stats
    by_status = dict(stats.by_status)
    sold, revenue = stats.tickets_sold, stats.revenue
    for order in copies.values():
        by_status[order.status] = by_status.get(order.status, 0) + 1
        if order.status == CONFIRMED:
            sold += ticket_count(order)
            revenue += order.total
    return OrderStats(by_status=by_status, tickets_sold=sold, revenue=money(revenue))


async def event_sales(engine: Engine, store: AsyncStore, event_id: str) -> dict[str, CategorySales]:
    """:meth:`AsyncStore.event_sales` (tickets and what buyers paid, per category) with
    the event's orders not stored yet."""
    copies = await overlay(engine, store, [event_id])
    sales = await store.event_sales(event_id, exclude_ids=list(copies) or None)
    if not copies:
        return sales
    sold: dict[str, int] = defaultdict(int)
    paid: dict[str, float] = defaultdict(float)
    for category, figures in sales.items():
        sold[category] += figures.sold
        paid[category] += figures.revenue
    for order in copies.values():
        if order.status == CONFIRMED:
            for t in order.tickets:
                sold[t.category_id] += t.quantity
                paid[t.category_id] += t.quantity * t.unit_price
    return {c: CategorySales(sold=sold[c], revenue=money(paid[c])) for c in sold}
