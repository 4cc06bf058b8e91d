"""HTTP for the admin views: every order, global stats, per-event sales (the rules are
api.services.admin)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter, QueryParameter

from api.deps import SERVICES, LimitParam, PageParam
from api.present import order_page, sales_out, stats_out
from api.schemas import EventSalesOut, Id, OrderPage, OrderState, Stats
from api.security import Principal, admin_only
from api.services.admin import AdminService
from engine.vocabulary import ID_PATTERN


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]
    dependencies = SERVICES

    @get("/orders", guards=[admin_only])
    async def orders(
        self,
        admin: AdminService,
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
        estado: Annotated[OrderState | None, QueryParameter(name="estado")] = None,
        eventoId: Annotated[str | None, Parameter(pattern=f"^{ID_PATTERN}$")] = None,
    ) -> OrderPage:
        found, total = await admin.orders(page, limit, status=estado, event_id=eventoId)
        return order_page(found, page, limit, total)

    @get("/stats", guards=[admin_only])
    async def stats(self, admin: AdminService) -> Stats:
        return stats_out(await admin.overview())

    @get("/events/{event_id:str}/sales")
    async def sales(self, admin: AdminService, who: Principal, event_id: Id) -> EventSalesOut:
        return sales_out(await admin.event_sales(who, event_id))
