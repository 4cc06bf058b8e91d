"""Admin views: every order, global stats, per-event sales."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.deps import LimitParam, PageParam, caller, resources
from api.errors import ApiError
from api.present import order_out
from api.schemas import (
    CategorySalesOut,
    EventSalesOut,
    Id,
    OrderPage,
    OrderState,
    Stats,
    pagination,
)
from api.security import admin_only


class AdminController(Controller):
    path = "/api/admin"
    tags = ["admin"]

    @get("/orders", guards=[admin_only])
    async def orders(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
        estado: Annotated[OrderState | None, Parameter(query="estado")] = None,
        eventoId: Annotated[str | None, Parameter(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    ) -> OrderPage:
        store = resources(request).store
        orders, total = await store.list_orders(page, limit, status=estado, event_id=eventoId)
        return OrderPage(
            data=[order_out(o) for o in orders], pagination=pagination(page, limit, total)
        )

    @get("/stats", guards=[admin_only])
    async def stats(self, request: Request[Any, Any, Any]) -> Stats:
        res = resources(request)
        order_stats = await res.store.order_stats()
        stocks = await res.engine.stocks(await res.engine.event_ids())
        live_holds = await res.engine.live_holds(list(stocks))
        return Stats(
            usuariosPorRol=await res.store.count_users_by_role(),
            eventos=await res.store.count_events(),
            ordenesPorEstado=order_stats.by_status,
            ticketsVendidos=sum(c.sold for s in stocks.values() for c in s.categories),
            ingresos=round(sum(c.sold * c.price for s in stocks.values() for c in s.categories), 2),
            reservasActivas=live_holds,
            ticketsRetenidos=sum(c.held for s in stocks.values() for c in s.categories),
        )

    @get("/events/{event_id:str}/sales")
    async def sales(self, request: Request[Any, Any, Any], event_id: Id) -> EventSalesOut:
        res = resources(request)
        who = caller(request)
        event = await res.store.get_event(event_id)
        if event is None:
            raise ApiError(404, f"event {event_id} not found", code="event_not_found")
        if not who.is_admin and event.organizer_id != who.id:
            raise ApiError(403, "only the event's organizer or an ADMIN", code="not_owner")
        stock = await res.engine.stock(event_id)
        live = {c.id: c for c in stock.categories} if stock else {}
        rows = []
        for c in event.categories:
            s = live.get(c.id)
            sold, held, avail = (s.sold, s.held, s.available) if s else (0, 0, c.total)
            rows.append(
                CategorySalesOut(
                    categoriaId=c.id,
                    nombre=c.name,
                    precio=c.price,
                    total=c.total,
                    vendidos=sold,
                    retenidos=held,
                    disponibles=avail,
                    ingresos=round(sold * c.price, 2),
                )
            )
        return EventSalesOut(
            eventoId=event.id,
            nombre=event.name,
            categorias=rows,
            total=sum(r.total for r in rows),
            vendidos=sum(r.vendidos for r in rows),
            retenidos=sum(r.retenidos for r in rows),
            disponibles=sum(r.disponibles for r in rows),
            ingresos=round(sum(r.ingresos for r in rows), 2),
        )
