"""Retention of finished orders: the writer marks stored orders as retired, and once
``order_retention_ms`` has passed the sweeper prunes them from Redis (reads then fall back
to the store): the :class:`RetentionMixin` part of the Engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from engine import keys
from engine.base import EngineBase
from engine.models import Order
from engine.vocabulary import OrderStatus

RETIRE_CHUNK = 1000  # retired members per script call


class RetentionMixin(EngineBase):
    """Finished, stored orders leaving Redis after their retention window."""

    async def retire_orders(self, event_id: str, orders: Iterable[tuple[str, int]]) -> int:
        """Mark ``(order id, version)`` pairs of one event as stored by the writer: once
        ``order_retention_ms`` has passed, :meth:`prune_event` removes each from Redis if it
        is still finished at that version. Returns how many were newly marked."""
        members = [f"{order_id}:{version}" for order_id, version in orders]
        added = 0
        for start in range(0, len(members), RETIRE_CHUNK):
            chunk = members[start : start + RETIRE_CHUNK]
            added += int(await self.scripts.call("retire_orders", [keys.retired(event_id)], chunk))
        return added

    async def retire_finished(self, orders: Iterable[Order]) -> int:
        """:meth:`retire_orders` for the finished orders (CONFIRMED, EXPIRED, CANCELLED)
        among ``orders``, whatever their events; live holds are left alone."""
        by_event: dict[str, list[tuple[str, int]]] = {}
        for order in orders:
            if order.status != OrderStatus.RESERVED:
                by_event.setdefault(order.event_id, []).append((order.id, order.version))
        added = await asyncio.gather(*(self.retire_orders(e, o) for e, o in by_event.items()))
        return sum(added)

    async def prune_event(self, event_id: str) -> int:
        """Remove the event's retired orders whose retention window has passed, in bounded
        batches (reads then fall back to the store). Returns how many left Redis."""
        pruned = 0
        while True:
            raw = await self.scripts.call(
                "prune_orders",
                [keys.orders(event_id), keys.idempotency(event_id), keys.retired(event_id)],
                [self.config.order_retention_ms, self.config.sweep_batch],
            )
            pruned += int(raw[0])
            if not int(raw[1]):
                return pruned
