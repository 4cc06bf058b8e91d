"""HTTP for an event's waitlist (the rules are api.services.waitlist)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import caller, resources
from api.present import waitlist_entry_out
from api.schemas import Id, WaitlistEntryOut, WaitlistIn
from api.services.waitlist import WaitlistService


def _waitlist(request: Request[Any, Any, Any]) -> WaitlistService:
    service: WaitlistService = resources(request).waitlist
    return service


class WaitlistController(Controller):
    path = "/api/events/{event_id:str}/waitlist"
    tags = ["waitlist"]

    @post("/", status_code=HTTP_201_CREATED)
    async def join(
        self, request: Request[Any, Any, Any], event_id: Id, data: WaitlistIn
    ) -> WaitlistEntryOut:
        entry = await _waitlist(request).join(
            caller(request), event_id, data.categoriaId, data.cantidad
        )
        return waitlist_entry_out(entry)

    @get("/me")
    async def mine(self, request: Request[Any, Any, Any], event_id: Id) -> list[WaitlistEntryOut]:
        entries = await _waitlist(request).mine(caller(request), event_id)
        return [waitlist_entry_out(e) for e in entries]

    @delete("/me", status_code=HTTP_204_NO_CONTENT)
    async def leave(
        self,
        request: Request[Any, Any, Any],
        event_id: Id,
        categoria_id: Annotated[
            str, QueryParameter(name="categoriaId", pattern=r"^[A-Za-z0-9_-]{1,64}$")
        ],
    ) -> None:
        await _waitlist(request).leave(caller(request), event_id, categoria_id)
