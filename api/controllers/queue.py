"""HTTP for an event's admission queue (SPEC 10.1; the rules are api.services.queue)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.deps import caller, resources
from api.present import place_out, queue_out
from api.schemas import Id, PlaceOut, QueueIn, QueueOut
from api.services.queue import QueueService


def _queue(request: Request[Any, Any, Any]) -> QueueService:
    service: QueueService = resources(request).queue
    return service


class QueueController(Controller):
    path = "/api/events/{event_id:str}/queue"
    tags = ["queue"]

    @put("/")
    async def configure(
        self, request: Request[Any, Any, Any], event_id: Id, data: QueueIn
    ) -> QueueOut:
        view = await _queue(request).configure(
            caller(request),
            event_id,
            opens_at=data.abreEn,
            pre_queue_minutes=data.preColaMinutos,
            admissions_per_minute=data.admisionesPorMinuto,
            admission_minutes=data.minutosAdmision,
            tickets_per_admission=data.entradasPorAdmision,
            heartbeat_s=data.latidoSegundos,
        )
        return queue_out(view.info, view.state)

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, request: Request[Any, Any, Any], event_id: Id) -> None:
        await _queue(request).delete(caller(request), event_id)

    @get("/", exclude_from_auth=True)
    async def show(self, request: Request[Any, Any, Any], event_id: Id) -> QueueOut:
        view = await _queue(request).get(event_id)
        return queue_out(view.info, view.state)

    @post("/join", status_code=HTTP_201_CREATED)
    async def join(self, request: Request[Any, Any, Any], event_id: Id) -> Response[PlaceOut]:
        place = await _queue(request).join(caller(request), event_id)
        status = HTTP_201_CREATED if place.created else HTTP_200_OK
        return Response(place_out(place), status_code=status)

    @get("/me")
    async def me(self, request: Request[Any, Any, Any], event_id: Id) -> PlaceOut:
        return place_out(await _queue(request).me(caller(request), event_id))

    @delete("/me", status_code=HTTP_204_NO_CONTENT)
    async def leave(self, request: Request[Any, Any, Any], event_id: Id) -> None:
        await _queue(request).leave(caller(request), event_id)
