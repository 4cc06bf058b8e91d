"""Recovery of live inventory from the store: re-arming events Redis lost, with the sold
counts of persisted confirmed orders, and expiring the holds that died with Redis."""

from __future__ import annotations

import logging
import time

import msgspec

from engine.core import Engine
from engine.models import CategorySpec
from engine.vocabulary import OrderStatus
from persistence.aio import AsyncStore
from persistence.store import Event

log = logging.getLogger(__name__)


def category_specs(event: Event, sold: dict[str, int]) -> list[CategorySpec]:
    """What the engine arms for a stored event, with ``sold`` tickets already gone."""
    return [
        CategorySpec(id=c.id, name=c.name, price=c.price, total=c.total, sold=sold.get(c.id, 0))
        for c in event.categories
    ]


async def rearm_from_store(engine: Engine, store: AsyncStore) -> int:
    """Arm every stored event Redis does not know (e.g. after a Redis loss), with sold
    counts from persisted confirmed orders, so nothing is sold twice. Idempotent.

    Holds the store still shows as RESERVED died with Redis: their tickets are on sale
    again, so they are recorded as EXPIRED (a newer version, so a late replay of the
    writer cannot bring them back)."""
    armed = 0
    for event in await store.all_events():
        if await engine.stock(event.id) is not None:
            continue
        sold = await store.sold_counts(event.id)
        await engine.arm_event(
            event.id,
            category_specs(event, sold),
            on_sale=event.state == "open",
            starts_at=event.date,
            max_per_buyer=event.max_per_buyer,
        )
        await engine.restore_buyer_counts(event.id, await bought_by_buyer(store, event.id))
        await expire_lost_holds(store, event.id)
        armed += 1
    if armed:
        log.info("re-armed %d events from the store", armed)
    return armed


async def bought_by_buyer(store: AsyncStore, event_id: str, page_size: int = 500) -> dict[str, int]:
    """Tickets each buyer bought in the event (its stored CONFIRMED orders): the buyer
    counts after a Redis loss, when every hold died with it. Waitlists are not restored."""
    counts: dict[str, int] = {}
    page = 1
    while True:
        orders, total = await store.list_orders(
            page, page_size, status=OrderStatus.CONFIRMED, event_id=event_id
        )
        for order in orders:
            counts[order.user_id] = counts.get(order.user_id, 0) + sum(
                t.quantity for t in order.tickets
            )
        if not orders or page * page_size >= total:
            return counts
        page += 1


async def expire_lost_holds(store: AsyncStore, event_id: str, page_size: int = 500) -> int:
    """Record every stored RESERVED order of ``event_id`` as EXPIRED; the count."""
    expired = 0
    while True:
        held, _ = await store.list_orders(
            1, page_size, status=OrderStatus.RESERVED, event_id=event_id
        )
        if not held:
            return expired
        now = int(time.time() * 1000)
        await store.upsert_orders(
            [
                msgspec.structs.replace(
                    o, status=OrderStatus.EXPIRED, version=o.version + 1, updated_at=now
                )
                for o in held
            ]
        )
        expired += len(held)
