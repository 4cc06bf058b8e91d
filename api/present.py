"""Turning engine and store records into the wire shapes of api/schemas.py."""

from __future__ import annotations

from api.schemas import CategoryOut, EventOut, OrderOut, TicketOut, UserOut
from engine.models import EventStock, Order, iso
from persistence.store import Event, User


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
        enVenta=(stock.state == "open") if stock else event.state == "open",
        creadoEn=iso(event.created_at),
        actualizadoEn=iso(event.updated_at),
    )
