"""Turning engine and store records, and the services' results, into the wire shapes of
api/schemas.py; and the pre-encoded JSON response of the hot path."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from api.schemas import (
    AuthOut,
    CategoryOut,
    CategorySalesOut,
    EventOut,
    EventPage,
    EventSalesOut,
    OrderOut,
    OrderPage,
    PlaceOut,
    QueueOut,
    QueueSalesOut,
    Stats,
    TicketOut,
    UserOut,
    WaitlistEntryOut,
    pagination,
)
from api.services.admin import EventSales, Overview
from api.services.auth import Session
from api.services.events import LiveCategory, LiveEvent
from engine.models import EventStock, Order, WaitlistEntry, iso
from engine.queue import Place, QueueInfo
from persistence.store import Event, User

_encode_json = msgspec.json.Encoder().encode


class EncodedJSON(ASGIResponse):
    """A JSON response whose body is encoded up front and sent as two ASGI messages.

    For the hot path (the hold): Litestar's ``Response`` costs ~24 us a request here
    (layered headers, cookies, hooks, type checks) and a plain ``ASGIResponse`` ~15 us (its
    header object); this costs ~3 us. A handler returning it runs no after-request hook and
    sets no cookie, so it suits handlers that need neither. It subclasses ``ASGIResponse``
    so that Litestar sends it as returned and OpenAPI takes the body's schema from the
    route's ``responses``; ``ASGIResponse.__init__`` is skipped on purpose.
    """

    def __init__(
        self,
        content: Any,
        status_code: int,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        media_type: bytes = b"application/json",
    ) -> None:
        self.body = _encode_json(content)
        self.status_code = status_code
        self.extra_headers = headers
        self.media_type_header = media_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": [
                    (b"content-type", self.media_type_header),
                    (b"content-length", str(len(body)).encode()),
                    *self.extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        nombre=user.name,
        email=user.email,
        role=user.role,
        creadoEn=iso(user.created_at),
    )


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        id=order.id,
        eventoId=order.event_id,
        usuarioId=order.user_id,
        tickets=[
            TicketOut(
                categoriaId=t.category_id,
                nombre=t.name,
                cantidad=t.quantity,
                precioUnitario=t.unit_price,
            )
            for t in order.tickets
        ],
        total=order.total,
        estado=order.status,
        expiraEn=iso(order.expires_at),
        creadoEn=iso(order.created_at),
        confirmadoEn=iso(order.confirmed_at) if order.confirmed_at else None,
        metodoPago=order.payment_method,
        transactionId=order.transaction_id,
    )


def event_out(event: Event, stock: EventStock | None) -> EventOut:
    """Live ``disponible`` and ``cantidadTotal`` from Redis (read together, so a reader
    never sees stock above its total mid-resize); the stored figures when not armed."""
    live = {c.id: c.available for c in stock.categories} if stock else {}
    totals = {c.id: c.total for c in stock.categories} if stock else {}
    categories = [
        CategoryOut(
            id=c.id,
            nombre=c.name,
            precio=c.price,
            cantidadTotal=totals.get(c.id, c.total),
            beneficios=list(c.benefits),
            disponible=live.get(c.id, 0 if stock else c.total),
        )
        for c in event.categories
    ]
    return EventOut(
        id=event.id,
        nombre=event.name,
        descripcion=event.description,
        fecha=iso(event.date),
        ubicacion=event.location,
        capacidadTotal=event.capacity,
        precioBase=event.base_price,
        organizadorId=event.organizer_id,
        categorias=categories,
        disponible=sum(c.disponible for c in categories),
        # Past events are off sale whatever their state (holds are refused: event_past).
        enVenta=event.date > time.time() * 1000
        and ((stock.state == "open") if stock else event.state == "open"),
        creadoEn=iso(event.created_at),
        actualizadoEn=iso(event.updated_at),
        maxPorComprador=event.max_per_buyer,
    )


def waitlist_entry_out(entry: WaitlistEntry) -> WaitlistEntryOut:
    return WaitlistEntryOut(
        id=entry.id,
        eventoId=entry.event_id,
        categoriaId=entry.category_id,
        cantidad=entry.quantity,
        posicion=entry.position,
        estado=entry.status,
        ordenId=entry.order_id,
        ofertaExpiraEn=iso(entry.offer_expires_at) if entry.offer_expires_at else None,
    )


def event_page(events: list[LiveEvent], page: int, limit: int, total: int) -> EventPage:
    return EventPage(
        data=[event_out(e, s) for e, s in events], pagination=pagination(page, limit, total)
    )


def order_page(orders: list[Order], page: int, limit: int, total: int) -> OrderPage:
    return OrderPage(data=[order_out(o) for o in orders], pagination=pagination(page, limit, total))


def category_out(live: LiveCategory) -> CategoryOut:
    category, available = live
    return CategoryOut(
        id=category.id,
        nombre=category.name,
        precio=category.price,
        cantidadTotal=category.total,
        beneficios=category.benefits,
        disponible=available,
    )


def auth_out(session: Session) -> AuthOut:
    return AuthOut(token=session.token, user=user_out(session.user))


def stats_out(overview: Overview) -> Stats:
    return Stats(
        usuariosPorRol=overview.users_by_role,
        eventos=overview.events,
        ordenesPorEstado=overview.orders_by_status,
        ticketsVendidos=overview.tickets_sold,
        ingresos=overview.revenue,
        reservasActivas=overview.live_holds,
        ticketsRetenidos=overview.tickets_held,
    )


def sales_out(sales: EventSales) -> EventSalesOut:
    return EventSalesOut(
        eventoId=sales.event_id,
        nombre=sales.name,
        categorias=[
            CategorySalesOut(
                categoriaId=c.category_id,
                nombre=c.name,
                precio=c.price,
                total=c.total,
                vendidos=c.sold,
                retenidos=c.held,
                disponibles=c.available,
                ingresos=c.revenue,
                enEspera=c.waiting,
            )
            for c in sales.categories
        ],
        total=sales.total,
        vendidos=sales.sold,
        retenidos=sales.held,
        disponibles=sales.available,
        ingresos=sales.revenue,
        cola=queue_sales_out(sales.queue, sales.queue_outflow) if sales.queue else None,
    )


def queue_out(info: QueueInfo, state: str) -> QueueOut:
    return QueueOut(
        eventoId=info.event_id,
        estado=state,
        abreEn=iso(info.opens_at_ms),
        enCola=info.waiting,
        admitidos=info.admitted,
        compromisoSemilla=info.commitment,
        semilla=info.seed,
        admisionesPorMinuto=info.admissions_per_minute,
        minutosAdmision=round(info.admission_ms / 60_000, 4),
        preColaMinutos=info.pre_queue_minutes,
        entradasPorAdmision=info.tickets_per_admission,
        latidoSegundos=info.heartbeat_s,
    )


def place_out(place: Place) -> PlaceOut:
    return PlaceOut(
        eventoId=place.event_id,
        estado=place.status,
        posicion=place.position,
        delante=place.ahead,
        esperaEstimadaSegundos=place.eta_s,
        entradasRestantes=place.tickets_left,
        admisionToken=place.token,
        admisionExpiraEn=iso(place.token_expires_ms) if place.token_expires_ms else None,
    )


def queue_sales_out(info: QueueInfo, outflow: int) -> QueueSalesOut:
    return QueueSalesOut(
        estado=info.state,
        enCola=info.waiting,
        admitidos=info.admitted,
        admitidosSinReserva=info.outstanding,
        convertidos=info.converted,
        perdidos=info.lost,
        caducados=info.expired,
        salidaPorMinuto=outflow,
        agotadoEn=iso(info.sold_out_at_ms) if info.sold_out_at_ms else None,
        abiertaEn=iso(info.opened_at_ms) if info.opened_at_ms else None,
    )
