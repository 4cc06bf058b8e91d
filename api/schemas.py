"""Wire shapes of the HTTP API (msgspec Structs, Spanish field names of the contract).

Validation lives on the types: Litestar validates every request body against them and the
error handler turns a failure into a 422 problem+json naming the offending fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from engine.vocabulary import ID_PATTERN, ORDER_ID_PATTERN, OrderStatus, Role

Id = Annotated[str, Meta(pattern=f"^{ID_PATTERN}$", description="resource id")]
OrderId = Annotated[str, Meta(pattern=f"^{ORDER_ID_PATTERN}$", description="order id")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(max_length=5000)]
Email = Annotated[
    str,
    Meta(
        pattern=r"^[^@\s]{1,64}@[^@\s]{1,185}\.[^@\s]{2,63}$",
        max_length=254,
        description="e-mail address",
    ),
]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
# The policy itself (api.security.password_problems) is checked by the service, with its
# own message; the OpenAPI document says it (``extra["openapi"]``, api/openapi.py): 8 to
# 72 characters (a JSON Schema length counts characters; bcrypt's limit is 72 bytes).
NewPassword = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=1024,
        description="at least 8 characters with letters and digits; at most 72 bytes",
        extra={"openapi": {"minLength": 8, "maxLength": 72}},
    ),
]
Money = Annotated[float, Meta(ge=0, le=1_000_000)]
Quantity = Annotated[int, Meta(ge=1, le=1000)]
Capacity = Annotated[int, Meta(ge=0, le=10_000_000)]
PerBuyer = Annotated[int, Meta(ge=1, le=10_000_000, description="tickets per buyer per event")]
OrderState = OrderStatus


# -- auth --------------------------------------------------------------------------------


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name
    email: Email
    password: NewPassword
    role: Role = Role.BUYER


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=1, max_length=254)]
    password: Password


class UserOut(msgspec.Struct):
    id: str
    nombre: str
    email: str
    role: str
    creadoEn: str


class AuthOut(msgspec.Struct):
    token: str
    user: UserOut


# -- events and categories ---------------------------------------------------------------


class CategoryIn(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name
    precio: Money
    cantidadTotal: Capacity
    beneficios: Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=50)] = []


class CategoryPatch(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name | None = None
    precio: Money | None = None
    cantidadTotal: Capacity | None = None
    beneficios: (
        Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=50)] | None
    ) = None


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name
    fecha: datetime
    ubicacion: Name
    capacidadTotal: Capacity
    precioBase: Money
    descripcion: Text = ""
    categorias: Annotated[list[CategoryIn], Meta(max_length=50)] = []
    maxPorComprador: PerBuyer | None = None


class EventPatch(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name | None = None
    descripcion: Text | None = None
    fecha: datetime | None = None
    ubicacion: Name | None = None
    capacidadTotal: Capacity | None = None
    precioBase: Money | None = None
    enVenta: bool | None = None
    maxPorComprador: PerBuyer | msgspec.UnsetType | None = msgspec.UNSET
    """null removes the cap; absent keeps it."""


class CategoryOut(msgspec.Struct):
    id: str
    nombre: str
    precio: float
    cantidadTotal: int
    beneficios: list[str]
    disponible: int


class EventOut(msgspec.Struct):
    id: str
    nombre: str
    descripcion: str
    fecha: str
    ubicacion: str
    capacidadTotal: int
    precioBase: float
    organizadorId: str
    categorias: list[CategoryOut]
    disponible: int
    enVenta: bool
    creadoEn: str
    actualizadoEn: str
    maxPorComprador: int | None = None


# -- orders ------------------------------------------------------------------------------


class TicketIn(msgspec.Struct, forbid_unknown_fields=True):
    categoriaId: Id
    cantidad: Quantity


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    eventoId: Id
    tickets: Annotated[list[TicketIn], Meta(min_length=1, max_length=20)]


class ConfirmIn(msgspec.Struct, forbid_unknown_fields=True):
    metodoPago: Annotated[str, Meta(min_length=1, max_length=50)]
    transactionId: Annotated[str, Meta(min_length=1, max_length=128)]


class WaitlistIn(msgspec.Struct, forbid_unknown_fields=True):
    categoriaId: Id
    cantidad: Quantity


class WaitlistEntryOut(msgspec.Struct):
    id: str
    eventoId: str
    categoriaId: str
    cantidad: int
    posicion: int | None
    estado: str
    ordenId: str | None = None
    ofertaExpiraEn: str | None = None


class TicketOut(msgspec.Struct):
    categoriaId: str
    nombre: str
    cantidad: int
    precioUnitario: float


class OrderOut(msgspec.Struct, omit_defaults=True):
    id: str
    eventoId: str
    usuarioId: str
    tickets: list[TicketOut]
    total: float
    estado: str
    expiraEn: str
    creadoEn: str
    confirmadoEn: str | None = None
    metodoPago: str | None = None
    transactionId: str | None = None


# -- lists and admin ---------------------------------------------------------------------


class Pagination(msgspec.Struct):
    page: int
    limit: int
    total: int
    totalPages: int


class EventPage(msgspec.Struct):
    data: list[EventOut]
    pagination: Pagination


class OrderPage(msgspec.Struct):
    data: list[OrderOut]
    pagination: Pagination


class Stats(msgspec.Struct):
    usuariosPorRol: dict[str, int]
    eventos: int
    ordenesPorEstado: dict[str, int]
    ticketsVendidos: int
    ingresos: float
    reservasActivas: int
    ticketsRetenidos: int


class CategorySalesOut(msgspec.Struct):
    categoriaId: str
    nombre: str
    precio: float
    total: int
    vendidos: int
    retenidos: int
    disponibles: int
    ingresos: float
    enEspera: int = 0
    """Waitlist entries still waiting for this category."""


class EventSalesOut(msgspec.Struct):
    eventoId: str
    nombre: str
    categorias: list[CategorySalesOut]
    total: int
    vendidos: int
    retenidos: int
    disponibles: int
    ingresos: float
    cola: QueueSalesOut | None = None
    """The admission queue, when the event has one."""


def pagination(page: int, limit: int, total: int) -> Pagination:
    return Pagination(page=page, limit=limit, total=total, totalPages=(total + limit - 1) // limit)


# -- webhooks (SPEC 11.1) ---------------------------------------------------------------

WebhookType = Annotated[
    str,
    Meta(
        pattern=r"^(order\.created|order\.confirmed|order\.cancelled|order\.expired"
        r"|event\.sold_out|event\.updated|webhook\.test)$",
        description="a webhook message type",
    ),
]


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=8, max_length=2048)]
    eventos: Annotated[
        list[WebhookType],
        Meta(min_length=1, max_length=7, extra={"openapi": {"uniqueItems": True}}),
    ]
    eventoId: Annotated[str, Meta(pattern=f"^{ID_PATTERN}$")] | None = None


class WebhookOut(msgspec.Struct, omit_defaults=True):
    id: str
    url: str
    eventos: list[str]
    eventoId: str | None
    activo: bool
    creadoEn: str
    motivoDesactivacion: str | None = None
    desactivadoEn: str | None = None


class WebhookCreated(msgspec.Struct):
    """The one answer that carries the signing secret."""

    id: str
    url: str
    eventos: list[str]
    eventoId: str | None
    activo: bool
    secreto: str
    creadoEn: str


class WebhookPage(msgspec.Struct):
    data: list[WebhookOut]
    pagination: Pagination


class DeliveryOut(msgspec.Struct):
    id: str
    tipo: str
    estado: str
    intentos: int
    ultimoCodigo: int | None
    latenciaMs: int | None
    creadoEn: str
    ultimoError: str | None = None


class DeliveryPage(msgspec.Struct):
    data: list[DeliveryOut]
    pagination: Pagination


# -- admission queue (SPEC 10.1) -----------------------------------------------------------


class QueueIn(msgspec.Struct, forbid_unknown_fields=True):
    abreEn: datetime
    preColaMinutos: Annotated[float, Meta(ge=0, le=7 * 24 * 60)] = 30
    admisionesPorMinuto: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    minutosAdmision: Annotated[float, Meta(ge=0.01, le=24 * 60)] = 10
    entradasPorAdmision: Annotated[int, Meta(ge=1, le=1000)] = 2
    latidoSegundos: Annotated[int, Meta(ge=1, le=3600)] = 30


class QueueOut(msgspec.Struct):
    eventoId: str
    estado: str
    abreEn: str
    enCola: int
    admitidos: int
    compromisoSemilla: str
    admisionesPorMinuto: int | None
    minutosAdmision: float
    semilla: str | None = None
    preColaMinutos: float = 30
    entradasPorAdmision: int = 2
    latidoSegundos: int = 30


class PlaceOut(msgspec.Struct):
    eventoId: str
    estado: str
    posicion: int | None
    delante: int | None
    esperaEstimadaSegundos: int | None
    entradasRestantes: int
    admisionToken: str | None = None
    admisionExpiraEn: str | None = None


class QueueSalesOut(msgspec.Struct):
    """The admission queue in the organizer's sales view."""

    estado: str
    enCola: int
    admitidos: int
    admitidosSinReserva: int
    """Admitted buyers who have not held yet (``holding`` is those who did: ``convertidos``)."""
    convertidos: int
    perdidos: int
    caducados: int
    salidaPorMinuto: int
    """Admissions in the last minute (the measured outflow)."""
    agotadoEn: str | None = None
    abiertaEn: str | None = None


# -- errors (RFC 9457) ---------------------------------------------------------------------


class FieldError(msgspec.Struct):
    """One invalid part of a request, in plain words."""

    field: Annotated[str, Meta(description="the field (tickets[0].cantidad), parameter or body")]
    message: str
    source: Annotated[str, Meta(description="body, query, path, header or cookie")]


class Problem(msgspec.Struct, omit_defaults=True):
    """Every error of the API, as ``application/problem+json`` (RFC 9457), as api/errors.py
    answers it. ``code`` is the machine-readable reason; a refusal may add the fields the
    client needs (the optional ones here, or others)."""

    type: str
    title: str
    status: int
    detail: str
    instance: Annotated[str, Meta(description="the request's path")]
    code: Annotated[str, Meta(description="the machine-readable reason (sold_out, ...)")]
    errors: Annotated[list[FieldError], Meta(description="422: every invalid field")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    categoriaId: Annotated[str, Meta(description="the category refused")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    categoriaNombre: str | msgspec.UnsetType = msgspec.UNSET
    disponible: Annotated[int, Meta(description="tickets left in that category")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
    estado: Annotated[str, Meta(description="the order's state that forbids the change")] | (
        msgspec.UnsetType
    ) = msgspec.UNSET
