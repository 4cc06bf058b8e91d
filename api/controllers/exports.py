"""HTTP for the CSV exports (SPEC 11.2), streamed; the rules are api.services.exports."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream

from api.deps import SERVICES, resources
from api.schemas import Id, OrderState
from api.security import Principal, admin_only
from api.services.exports import ExportService
from engine.vocabulary import ID_PATTERN

CSV = "text/csv"  # Litestar adds "; charset=utf-8" (the response charset) to text/*


def _exports(request: Request[Any, Any, Any]) -> ExportService:
    service: ExportService = resources(request).exports
    return service


def _csv(body: Any, filename: str) -> Stream:
    return Stream(
        body,
        media_type=CSV,
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )


class ExportController(Controller):
    path = "/api/admin"
    tags = ["admin"]
    dependencies = {**SERVICES, "exports": Provide(_exports, sync_to_thread=False)}

    @get("/events/{event_id:str}/orders.csv", media_type=CSV)
    async def event_orders(self, exports: ExportService, who: Principal, event_id: Id) -> Stream:
        return _csv(await exports.event_orders(who, event_id), f"orders-{event_id}.csv")

    @get("/orders.csv", guards=[admin_only], media_type=CSV)
    async def orders(
        self,
        exports: ExportService,
        estado: Annotated[OrderState | None, QueryParameter(name="estado")] = None,
        eventoId: Annotated[str | None, Parameter(pattern=f"^{ID_PATTERN}$")] = None,
    ) -> Stream:
        return _csv(await exports.orders(status=estado, event_id=eventoId), "orders.csv")
