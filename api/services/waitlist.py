"""The waitlist rules (SPEC 10.4): who may join a sold-out category's list and for how
many tickets, reading one's entries, leaving (an offer out goes to the next entry).

The offers themselves are made by the engine's releasing scripts, in the same atomic step
that returns the tickets; this service never moves stock."""

from __future__ import annotations

from api.security import Principal
from api.services.errors import NotFound
from engine.core import Engine
from engine.models import WaitlistEntry
from persistence.aio import AsyncStore
from persistence.store import Event


class WaitlistService:
    def __init__(self, engine: Engine, store: AsyncStore) -> None:
        self.engine = engine
        self.store = store

    async def _event(self, event_id: str) -> Event:
        event = await self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        return event

    async def _category(self, event_id: str, category_id: str) -> None:
        event = await self._event(event_id)
        if all(c.id != category_id for c in event.categories):
            raise NotFound(f"category {category_id} not found", code="category_not_found")

    async def join(
        self, who: Principal, event_id: str, category_id: str, quantity: int
    ) -> WaitlistEntry:
        """Only while the category has nothing on sale (409 ``stock_available``), within
        the per-order limit, once per buyer and category (409 ``waitlist_duplicate``),
        and within the buyer cap (409 ``buyer_limit``)."""
        await self._category(event_id, category_id)
        return await self.engine.join_waitlist(event_id, category_id, who.id, quantity)

    async def mine(self, who: Principal, event_id: str) -> list[WaitlistEntry]:
        await self._event(event_id)
        return await self.engine.waitlist_entries(event_id, who.id)

    async def leave(self, who: Principal, event_id: str, category_id: str) -> None:
        """404 ``not_in_waitlist`` without a live entry; an offer out is cancelled."""
        await self._category(event_id, category_id)
        await self.engine.leave_waitlist(event_id, category_id, who.id)
