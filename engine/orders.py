"""Reading orders as Redis holds them: one order or several by id, an event's orders, and a
user's recent orders (read-your-writes before the writer has stored them): the
:class:`OrderReadsMixin` part of the Engine."""

from __future__ import annotations

from collections.abc import Iterable

from engine import keys
from engine.base import RECENT_KEEP, RECENT_TTL_S, EngineBase
from engine.models import Order, decode_order, event_of_order
from engine.vocabulary import text


class OrderReadsMixin(EngineBase):
    """Orders as Redis holds them now."""

    async def get_order(self, order_id: str) -> Order | None:
        event_id = event_of_order(order_id)
        if event_id is None:
            return None
        raw = await self.redis.hget(keys.orders(event_id), order_id)
        return decode_order(raw) if raw else None

    async def orders_of_event(self, event_id: str) -> list[Order]:
        """Every order Redis holds for an event (audit, admin; not a hot path)."""
        out: list[Order] = []
        async for _, raw in self.redis.hscan_iter(keys.orders(event_id), count=1000):
            out.append(decode_order(raw))
        return out

    async def note_user_order(
        self, order: Order, keep: int = RECENT_KEEP, ttl_s: int = RECENT_TTL_S
    ) -> None:
        """Remember a user's new order for ``ttl_s`` so their order list shows it before
        the writer has persisted it (read-your-writes)."""
        await self._run(
            "remember_order",
            [keys.user_orders(order.user_id)],
            [order.id, order.created_at, keep, ttl_s],
        )

    async def get_orders(self, order_ids: Iterable[str]) -> list[Order]:
        """The orders Redis holds among ``order_ids``, in their order (one pipelined read;
        absent ones, and ids that name no event, are skipped)."""
        wanted = [(oid, event_id) for oid in order_ids if (event_id := event_of_order(oid))]
        if not wanted:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for oid, event_id in wanted:
            pipe.hget(keys.orders(event_id), oid)
        found = await pipe.execute()
        return [decode_order(raw) for raw in found if raw]

    async def recent_user_order_ids(self, user_id: str) -> list[str]:
        """The ids in the user's recent-orders set, newest first: ids alone (some of them
        may name orders Redis no longer holds, or never held)."""
        return [text(x) for x in await self.redis.zrevrange(keys.user_orders(user_id), 0, -1)]

    async def recent_user_orders(self, user_id: str) -> list[Order]:
        """The user's recent orders, as Redis holds them now, newest first."""
        return await self.get_orders(await self.recent_user_order_ids(user_id))
