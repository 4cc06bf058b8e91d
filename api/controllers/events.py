"""Events and their ticket categories: public reads with live stock, owner-guarded writes."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import LimitParam, PageParam, caller, resources
from api.errors import ApiError
from api.present import event_out
from api.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    EventIn,
    EventOut,
    EventPage,
    EventPatch,
    Id,
    pagination,
)
from api.security import Principal, organizer_or_admin
from api.state import Resources, category_specs
from engine.models import new_id
from persistence.store import Category, Event

SEARCH_SCAN_LIMIT = 1000


def _ms(value: datetime, field: str = "fecha") -> int:
    """Epoch ms of an event date; 1970..9998 UTC, so every date formats back to ISO."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = 10_000
    if not 1970 <= year <= 9998:
        raise ApiError(
            422,
            f"{field} must be between 1970 and 9998",
            code="invalid_date",
            errors=[{"field": field, "message": "out of range", "source": "body"}],
        )
    return int(value.timestamp() * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _event_or_404(res: Resources, event_id: str) -> Event:
    event = await res.store.get_event(event_id)
    if event is None:
        raise ApiError(404, f"event {event_id} not found", code="event_not_found")
    return event


def _check_owner(event: Event, who: Principal) -> None:
    if not who.is_admin and event.organizer_id != who.id:
        raise ApiError(
            403, "only the event's organizer or an ADMIN may change it", code="not_owner"
        )


def _check_capacity(capacity: int, categories: list[Category]) -> None:
    used = sum(c.total for c in categories)
    if used > capacity:
        raise ApiError(
            422,
            f"categories add up to {used} tickets, more than capacidadTotal {capacity}",
            code="capacity_exceeded",
            errors=[
                {
                    "field": "capacidadTotal",
                    "message": "below the sum of cantidadTotal",
                    "source": "body",
                }
            ],
        )


def _category_out(category: Category, available: int) -> CategoryOut:
    return CategoryOut(
        id=category.id,
        nombre=category.name,
        precio=category.price,
        cantidadTotal=category.total,
        beneficios=category.benefits,
        disponible=available,
    )


class EventController(Controller):
    path = "/api/events"
    tags = ["events"]

    @get("/", exclude_from_auth=True)
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> EventPage:
        res = resources(request)
        events, total = await res.store.list_events(page, limit)
        stocks = await res.engine.stocks([e.id for e in events])
        return EventPage(
            data=[event_out(e, stocks.get(e.id)) for e in events],
            pagination=pagination(page, limit, total),
        )

    @get("/search", exclude_from_auth=True)
    async def search(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
        fecha: Annotated[date | None, Parameter(query="fecha")] = None,
        ubicacion: Annotated[str | None, Parameter(query="ubicacion", max_length=200)] = None,
        disponible: Annotated[bool | None, Parameter(query="disponible")] = None,
    ) -> EventPage:
        res = resources(request)
        start = end = None
        if fecha is not None:
            day = datetime(fecha.year, fecha.month, fecha.day, tzinfo=UTC)
            start, end = _ms(day), _ms(day + timedelta(days=1))
        location = ubicacion.strip() if ubicacion and ubicacion.strip() else None
        if disponible is None:
            events, total = await res.store.list_events(
                page, limit, date_from_ms=start, date_to_ms=end, location=location
            )
            stocks = await res.engine.stocks([e.id for e in events])
        else:
            # Availability is live in Redis: filter a bounded scan, then paginate.
            candidates, _ = await res.store.list_events(
                1, SEARCH_SCAN_LIMIT, date_from_ms=start, date_to_ms=end, location=location
            )
            stocks = await res.engine.stocks([e.id for e in candidates])
            matching = [
                e
                for e in candidates
                if (event_out(e, stocks.get(e.id)).disponible > 0) == disponible
            ]
            total = len(matching)
            events = matching[(page - 1) * limit : page * limit]
        return EventPage(
            data=[event_out(e, stocks.get(e.id)) for e in events],
            pagination=pagination(page, limit, total),
        )

    @get("/{event_id:str}", exclude_from_auth=True)
    async def get_event(self, request: Request[Any, Any, Any], event_id: Id) -> EventOut:
        res = resources(request)
        event = await _event_or_404(res, event_id)
        return event_out(event, await res.engine.stock(event_id))

    @post("/", status_code=HTTP_201_CREATED, guards=[organizer_or_admin])
    async def create_event(self, request: Request[Any, Any, Any], data: EventIn) -> EventOut:
        res = resources(request)
        who = caller(request)
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
        event = Event(
            id=new_id(),
            name=data.nombre,
            description=data.descripcion,
            date=_ms(data.fecha),
            location=data.ubicacion,
            capacity=data.capacidadTotal,
            base_price=data.precioBase,
            organizer_id=who.id,
            categories=categories,
            state="open",
            created_at=now,
            updated_at=now,
        )
        await res.store.create_event(event)
        try:
            await res.engine.arm_event(event.id, category_specs(event, {}))
        except BaseException:
            await res.store.delete_event(event.id)
            raise
        return event_out(event, await res.engine.stock(event.id))

    @put("/{event_id:str}")
    async def update_event(
        self, request: Request[Any, Any, Any], event_id: Id, data: EventPatch
    ) -> EventOut:
        res = resources(request)
        async with res.engine.event_lock(event_id):
            event = await _event_or_404(res, event_id)
            _check_owner(event, caller(request))
            changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
            if not changes:
                raise ApiError(422, "nothing to change", code="empty_update")
            updated = msgspec.structs.replace(
                event,
                name=data.nombre if data.nombre is not None else event.name,
                description=data.descripcion if data.descripcion is not None else event.description,
                date=_ms(data.fecha) if data.fecha is not None else event.date,
                location=data.ubicacion if data.ubicacion is not None else event.location,
                capacity=data.capacidadTotal if data.capacidadTotal is not None else event.capacity,
                base_price=data.precioBase if data.precioBase is not None else event.base_price,
                state=("open" if data.enVenta else "closed")
                if data.enVenta is not None
                else event.state,
                updated_at=_now_ms(),
            )
            _check_capacity(updated.capacity, updated.categories)
            await res.store.replace_event(updated)
            wire = msgspec.to_builtins(changes)
            if data.enVenta is not None:
                await res.engine.set_state(event_id, updated.state, wire)
            else:
                await res.engine.publish_event_update(event_id, wire)
            return event_out(updated, await res.engine.stock(event_id))

    @delete("/{event_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_event(
        self,
        request: Request[Any, Any, Any],
        event_id: Id,
        force: Annotated[bool, Parameter(query="force")] = False,
    ) -> None:
        res = resources(request)
        async with res.engine.event_lock(event_id):
            who = caller(request)
            if not who.is_admin:
                raise ApiError(403, "requires role ADMIN", code="forbidden")
            await _event_or_404(res, event_id)
            stock = await res.engine.stock(event_id)
            if stock is not None:
                held = sum(c.held for c in stock.categories)
                sold = sum(c.sold for c in stock.categories)
                if (held or sold) and not force:
                    raise ApiError(
                        409,
                        f"event has {held} held and {sold} sold tickets; use ?force=true",
                        code="event_in_use",
                        retenidos=held,
                        vendidos=sold,
                    )
                # Close the sale first so no new hold lands while live ones are cancelled.
                await res.engine.set_state(event_id, "deleted", {"eliminado": True})
                for order in await res.engine.orders_of_event(event_id):
                    if order.status == "RESERVED":
                        await res.engine.cancel(order.id, who.id, is_admin=True)
            await res.store.delete_event(event_id)

    # -- categories ----------------------------------------------------------------------

    @get("/{event_id:str}/categories", exclude_from_auth=True)
    async def list_categories(
        self, request: Request[Any, Any, Any], event_id: Id
    ) -> list[CategoryOut]:
        res = resources(request)
        event = await _event_or_404(res, event_id)
        return event_out(event, await res.engine.stock(event_id)).categorias

    @post("/{event_id:str}/categories", status_code=HTTP_201_CREATED)
    async def create_category(
        self, request: Request[Any, Any, Any], event_id: Id, data: CategoryIn
    ) -> CategoryOut:
        res = resources(request)
        async with res.engine.event_lock(event_id):
            event = await _event_or_404(res, event_id)
            _check_owner(event, caller(request))
            category = Category(
                id=new_id(),
                name=data.nombre,
                price=data.precio,
                total=data.cantidadTotal,
                benefits=list(data.beneficios),
            )
            updated = msgspec.structs.replace(
                event, categories=[*event.categories, category], updated_at=_now_ms()
            )
            _check_capacity(updated.capacity, updated.categories)
            available = await res.engine.adjust_category(
                event_id, category.id, category.total, price=category.price, name=category.name
            )
            await res.store.replace_event(updated)
            return _category_out(category, available)

    @put("/{event_id:str}/categories/{category_id:str}")
    async def update_category(
        self,
        request: Request[Any, Any, Any],
        event_id: Id,
        category_id: Id,
        data: CategoryPatch,
    ) -> CategoryOut:
        res = resources(request)
        async with res.engine.event_lock(event_id):
            event = await _event_or_404(res, event_id)
            _check_owner(event, caller(request))
            current = next((c for c in event.categories if c.id == category_id), None)
            if current is None:
                raise ApiError(404, f"category {category_id} not found", code="category_not_found")
            category = Category(
                id=category_id,
                name=data.nombre if data.nombre is not None else current.name,
                price=data.precio if data.precio is not None else current.price,
                total=data.cantidadTotal if data.cantidadTotal is not None else current.total,
                benefits=list(data.beneficios) if data.beneficios is not None else current.benefits,
            )
            updated = msgspec.structs.replace(
                event,
                categories=[category if c.id == category_id else c for c in event.categories],
                updated_at=_now_ms(),
            )
            _check_capacity(updated.capacity, updated.categories)
            available = await res.engine.adjust_category(
                event_id, category_id, category.total, price=category.price, name=category.name
            )
            await res.store.replace_event(updated)
            return _category_out(category, available)

    @delete("/{event_id:str}/categories/{category_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_category(
        self, request: Request[Any, Any, Any], event_id: Id, category_id: Id
    ) -> None:
        res = resources(request)
        async with res.engine.event_lock(event_id):
            event = await _event_or_404(res, event_id)
            _check_owner(event, caller(request))
            if not any(c.id == category_id for c in event.categories):
                raise ApiError(404, f"category {category_id} not found", code="category_not_found")
            await res.engine.remove_category(event_id, category_id)
            await res.store.replace_event(
                msgspec.structs.replace(
                    event,
                    categories=[c for c in event.categories if c.id != category_id],
                    updated_at=_now_ms(),
                )
            )
