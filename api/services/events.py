"""The event rules: who may change an event, capacity against its categories, dates in
range, arming Redis with the store write (and undoing the write if arming fails),
deleting an event with live holds, and reads joined with Redis's live stock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

import msgspec

from api.schemas import CategoryIn, CategoryPatch, EventIn, EventPatch
from api.security import Principal, RateLimiter
from api.services.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from api.services.recovery import category_specs
from engine.core import Engine
from engine.models import EventStock, new_id
from engine.vocabulary import OrderStatus
from persistence.aio import AsyncStore
from persistence.store import Category, Event

SEARCH_SCAN_LIMIT = 1000


class LiveEvent(NamedTuple):
    """A stored event with Redis's live stock (None when it is not armed)."""

    event: Event
    stock: EventStock | None


class LiveCategory(NamedTuple):
    category: Category
    available: int


def available(event: Event, stock: EventStock | None) -> int:
    """Tickets on sale now: Redis's live figures, the stored totals when not armed."""
    if stock is None:
        return sum(c.total for c in event.categories)
    live = {c.id: c.available for c in stock.categories}
    return sum(live.get(c.id, 0) for c in event.categories)


def event_ms(value: datetime, field: str = "fecha") -> int:
    """Epoch ms of an event date; 1970..9998 UTC, so every date formats back to ISO."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = 10_000
    if not 1970 <= year <= 9998:
        raise Invalid(
            f"{field} must be between 1970 and 9998",
            code="invalid_date",
            fields={field: "out of range"},
        )
    return int(value.timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_owner(event: Event, who: Principal) -> None:
    if not who.is_admin and event.organizer_id != who.id:
        raise Forbidden("only the event's organizer or an ADMIN may change it", code="not_owner")


def _check_capacity(capacity: int, categories: list[Category]) -> None:
    used = sum(c.total for c in categories)
    if used > capacity:
        raise Invalid(
            f"categories add up to {used} tickets, more than capacidadTotal {capacity}",
            code="capacity_exceeded",
            fields={"capacidadTotal": "below the sum of cantidadTotal"},
        )


def _category_of(event: Event, category_id: str) -> Category:
    found = next((c for c in event.categories if c.id == category_id), None)
    if found is None:
        raise NotFound(f"category {category_id} not found", code="category_not_found")
    return found


class EventService:
    def __init__(
        self, engine: Engine, store: AsyncStore, creations: RateLimiter | None = None
    ) -> None:
        self.engine = engine
        self.store = store
        self.creations = creations
        """Events an organizer may create per window (``EVENTS_PER_HOUR``; not ADMINs)."""
        self.on_update: Callable[[LiveEvent], Awaitable[None]] | None = None
        """Called after an event's fields changed (the ``event.updated`` webhook)."""

    async def _event(self, event_id: str) -> Event:
        event = await self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        return event

    async def _owned(self, event_id: str, who: Principal) -> Event:
        event = await self._event(event_id)
        _check_owner(event, who)
        return event

    # -- reads -----------------------------------------------------------------------------

    async def _live(self, events: list[Event]) -> list[LiveEvent]:
        stocks = await self.engine.stocks([e.id for e in events])
        return [LiveEvent(e, stocks.get(e.id)) for e in events]

    async def page(self, page: int, limit: int) -> tuple[list[LiveEvent], int]:
        events, total = await self.store.list_events(page, limit)
        return await self._live(events), total

    async def search(
        self,
        page: int,
        limit: int,
        *,
        day: date | None = None,
        location: str | None = None,
        on_sale: bool | None = None,
    ) -> tuple[list[LiveEvent], int]:
        """Events on ``day`` (UTC) at ``location`` (substring), optionally only those with
        (``on_sale=True``) or without tickets left."""
        start = end = None
        if day is not None:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            start, end = event_ms(midnight), event_ms(midnight + timedelta(days=1))
        location = location.strip() if location and location.strip() else None
        if on_sale is None:
            events, total = await self.store.list_events(
                page, limit, date_from_ms=start, date_to_ms=end, location=location
            )
            return await self._live(events), total
        # Availability is live in Redis: filter a bounded scan, then paginate.
        candidates, _ = await self.store.list_events(
            1, SEARCH_SCAN_LIMIT, date_from_ms=start, date_to_ms=end, location=location
        )
        matching = [
            live for live in await self._live(candidates) if (available(*live) > 0) == on_sale
        ]
        return matching[(page - 1) * limit : page * limit], len(matching)

    async def get(self, event_id: str) -> LiveEvent:
        event = await self._event(event_id)
        return LiveEvent(event, await self.engine.stock(event_id))

    # -- event writes ----------------------------------------------------------------------

    async def create(self, who: Principal, data: EventIn) -> LiveEvent:
        """Store the event, then arm it in Redis; a failed arming removes it again."""
        now = _now_ms()
        categories = [
            Category(
                id=new_id(),
                name=c.nombre,
                price=c.precio,
                total=c.cantidadTotal,
                benefits=list(c.beneficios),
            )
            for c in data.categorias
        ]
        _check_capacity(data.capacidadTotal, categories)
        starts_at = event_ms(data.fecha)
        if starts_at <= now:
            raise Invalid(
                "fecha must be in the future: an event that has taken place is not on sale",
                code="event_past",
                fields={"fecha": "in the past"},
            )
        if self.creations is not None and not who.is_admin:  # counted once it is valid
            retry_after = await self.creations.hit("events", who.id)
            if retry_after is not None:
                raise RateLimited(retry_after)
        event = Event(
            id=new_id(),
            name=data.nombre,
            description=data.descripcion,
            date=starts_at,
            location=data.ubicacion,
            capacity=data.capacidadTotal,
            base_price=data.precioBase,
            organizer_id=who.id,
            categories=categories,
            state="open",
            max_per_buyer=data.maxPorComprador,
            created_at=now,
            updated_at=now,
        )
        await self.store.create_event(event)
        try:
            await self.engine.arm_event(
                event.id,
                category_specs(event, {}),
                starts_at=event.date,
                max_per_buyer=event.max_per_buyer,
            )
        except BaseException:
            await self.store.delete_event(event.id)
            raise
        return LiveEvent(event, await self.engine.stock(event.id))

    async def update(self, who: Principal, event_id: str, data: EventPatch) -> LiveEvent:
        async with self.engine.event_lock(event_id):
            event = await self._owned(event_id, who)
            changes = {
                k: v
                for k, v in msgspec.structs.asdict(data).items()
                if v is not None and v is not msgspec.UNSET
            }
            # maxPorComprador: null removes the cap. Lowered below what a buyer already
            # holds, their orders stay; only their new holds are refused (buyer_limit).
            cap_given = data.maxPorComprador is not msgspec.UNSET
            per_buyer = data.maxPorComprador if isinstance(data.maxPorComprador, int) else None
            if cap_given:
                changes["maxPorComprador"] = per_buyer
            if not changes:
                raise Invalid("nothing to change", code="empty_update")
            state = event.state
            if data.enVenta is not None:
                state = "open" if data.enVenta else "closed"
            updated = msgspec.structs.replace(
                event,
                name=data.nombre if data.nombre is not None else event.name,
                description=data.descripcion if data.descripcion is not None else event.description,
                date=event_ms(data.fecha) if data.fecha is not None else event.date,
                location=data.ubicacion if data.ubicacion is not None else event.location,
                capacity=data.capacidadTotal if data.capacidadTotal is not None else event.capacity,
                base_price=data.precioBase if data.precioBase is not None else event.base_price,
                state=state,
                max_per_buyer=per_buyer if cap_given else event.max_per_buyer,
                updated_at=_now_ms(),
            )
            _check_capacity(updated.capacity, updated.categories)
            await self.store.replace_event(updated)
            wire = msgspec.to_builtins(changes)
            if data.enVenta is not None or data.fecha is not None or cap_given:
                await self.engine.set_state(
                    event_id,
                    updated.state,
                    wire,
                    starts_at=updated.date,
                    max_per_buyer=updated.max_per_buyer or 0,
                )
            else:
                await self.engine.publish_event_update(event_id, wire)
            live = LiveEvent(updated, await self.engine.stock(event_id))
        if self.on_update is not None:
            await self.on_update(live)
        return live

    async def delete(self, who: Principal, event_id: str, *, force: bool = False) -> None:
        """ADMIN only. An event with held or sold tickets needs ``force``, which closes
        the sale and cancels every live hold before the event goes."""
        async with self.engine.event_lock(event_id):
            if not who.is_admin:
                raise Forbidden("requires role ADMIN", code="forbidden")
            await self._event(event_id)
            stock = await self.engine.stock(event_id)
            if stock is not None:
                held = sum(c.held for c in stock.categories)
                sold = sum(c.sold for c in stock.categories)
                if (held or sold) and not force:
                    raise Conflict(
                        f"event has {held} held and {sold} sold tickets; use ?force=true",
                        code="event_in_use",
                        retenidos=held,
                        vendidos=sold,
                    )
                # Close the sale first so no new hold lands while live ones are cancelled.
                await self.engine.set_state(event_id, "deleted", {"eliminado": True})
                for order in await self.engine.orders_of_event(event_id):
                    if order.status == OrderStatus.RESERVED:
                        await self.engine.cancel(order.id, who.id, is_admin=True)
            await self.store.delete_event(event_id)
            await self.engine.forget_event(event_id)

    # -- categories ------------------------------------------------------------------------

    async def create_category(
        self, who: Principal, event_id: str, data: CategoryIn
    ) -> LiveCategory:
        async with self.engine.event_lock(event_id):
            event = await self._owned(event_id, who)
            category = Category(
                id=new_id(),
                name=data.nombre,
                price=data.precio,
                total=data.cantidadTotal,
                benefits=list(data.beneficios),
            )
            return await self._save_category(event, [*event.categories, category], category)

    async def update_category(
        self, who: Principal, event_id: str, category_id: str, data: CategoryPatch
    ) -> LiveCategory:
        async with self.engine.event_lock(event_id):
            event = await self._owned(event_id, who)
            current = _category_of(event, category_id)
            category = Category(
                id=category_id,
                name=data.nombre if data.nombre is not None else current.name,
                price=data.precio if data.precio is not None else current.price,
                total=data.cantidadTotal if data.cantidadTotal is not None else current.total,
                benefits=list(data.beneficios) if data.beneficios is not None else current.benefits,
            )
            categories = [category if c.id == category_id else c for c in event.categories]
            return await self._save_category(event, categories, category)

    async def _save_category(
        self, event: Event, categories: list[Category], category: Category
    ) -> LiveCategory:
        """Resize in Redis first (it refuses going below what is held or sold), then store."""
        updated = msgspec.structs.replace(event, categories=categories, updated_at=_now_ms())
        _check_capacity(updated.capacity, updated.categories)
        left = await self.engine.adjust_category(
            event.id,
            category.id,
            category.total,
            price=category.price,
            name=category.name,
            benefits=category.benefits,
        )
        await self.store.replace_event(updated)
        return LiveCategory(category, left)

    async def delete_category(self, who: Principal, event_id: str, category_id: str) -> None:
        """Refused (409 ``category_in_use``) while any of its tickets is held or sold, a
        waitlist offer out included. Its waiters do not block it: they hold nothing, and
        the organizer has no way to empty a list. Redis removes the category and closes its
        waitlist in the same script (every waiter told, ``waitlist:closed``), then the
        store drops it."""
        async with self.engine.event_lock(event_id):
            event = await self._owned(event_id, who)
            _category_of(event, category_id)
            await self.engine.remove_category(event_id, category_id)
            await self.store.replace_event(
                msgspec.structs.replace(
                    event,
                    categories=[c for c in event.categories if c.id != category_id],
                    updated_at=_now_ms(),
                )
            )
