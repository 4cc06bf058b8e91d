"""HTTP for events and their ticket categories: public reads with live stock,
owner-guarded writes (the rules are api.services.events)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import SERVICES, LimitParam, PageParam
from api.present import category_out, event_out, event_page
from api.schemas import (
    CategoryIn,
    CategoryOut,
    CategoryPatch,
    EventIn,
    EventOut,
    EventPage,
    EventPatch,
    Id,
)
from api.security import Principal, organizer_or_admin
from api.services.events import EventService


class EventController(Controller):
    path = "/api/events"
    tags = ["events"]
    dependencies = SERVICES

    @get("/", exclude_from_auth=True)
    async def list_events(
        self,
        events: EventService,
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> EventPage:
        found, total = await events.page(page, limit)
        return event_page(found, page, limit, total)

    @get("/search", exclude_from_auth=True)
    async def search(
        self,
        events: EventService,
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
        fecha: Annotated[date | None, QueryParameter(name="fecha")] = None,
        ubicacion: Annotated[str | None, QueryParameter(name="ubicacion", max_length=200)] = None,
        disponible: Annotated[bool | None, QueryParameter(name="disponible")] = None,
    ) -> EventPage:
        found, total = await events.search(
            page, limit, day=fecha, location=ubicacion, on_sale=disponible
        )
        return event_page(found, page, limit, total)

    @get("/{event_id:str}", exclude_from_auth=True)
    async def get_event(self, events: EventService, event_id: Id) -> EventOut:
        return event_out(*await events.get(event_id))

    @post("/", status_code=HTTP_201_CREATED, guards=[organizer_or_admin])
    async def create_event(self, events: EventService, who: Principal, data: EventIn) -> EventOut:
        return event_out(*await events.create(who, data))

    @put("/{event_id:str}")
    async def update_event(
        self, events: EventService, who: Principal, event_id: Id, data: EventPatch
    ) -> EventOut:
        return event_out(*await events.update(who, event_id, data))

    @delete("/{event_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_event(
        self,
        events: EventService,
        who: Principal,
        event_id: Id,
        force: Annotated[bool, QueryParameter(name="force")] = False,
    ) -> None:
        await events.delete(who, event_id, force=force)

    # -- categories ----------------------------------------------------------------------

    @get("/{event_id:str}/categories", exclude_from_auth=True)
    async def list_categories(self, events: EventService, event_id: Id) -> list[CategoryOut]:
        return event_out(*await events.get(event_id)).categorias

    @post("/{event_id:str}/categories", status_code=HTTP_201_CREATED)
    async def create_category(
        self, events: EventService, who: Principal, event_id: Id, data: CategoryIn
    ) -> CategoryOut:
        return category_out(await events.create_category(who, event_id, data))

    @put("/{event_id:str}/categories/{category_id:str}")
    async def update_category(
        self,
        events: EventService,
        who: Principal,
        event_id: Id,
        category_id: Id,
        data: CategoryPatch,
    ) -> CategoryOut:
        return category_out(await events.update_category(who, event_id, category_id, data))

    @delete("/{event_id:str}/categories/{category_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_category(
        self, events: EventService, who: Principal, event_id: Id, category_id: Id
    ) -> None:
        await events.delete_category(who, event_id, category_id)
