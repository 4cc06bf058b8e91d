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
Money = Annotated[float, Meta(ge=0, le=1_000_000)]
Quantity = Annotated[int, Meta(ge=1, le=1000)]
Capacity = Annotated[int, Meta(ge=0, le=10_000_000)]
OrderState = OrderStatus


# -- auth --------------------------------------------------------------------------------


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name
    email: Email
    password: Password
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


class EventPatch(msgspec.Struct, forbid_unknown_fields=True):
    nombre: Name | None = None
    descripcion: Text | None = None
    fecha: datetime | None = None
    ubicacion: Name | None = None
    capacidadTotal: Capacity | None = None
    precioBase: Money | None = None
    enVenta: bool | None = None


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


class EventSalesOut(msgspec.Struct):
    eventoId: str
    nombre: str
    categorias: list[CategorySalesOut]
    total: int
    vendidos: int
    retenidos: int
    disponibles: int
    ingresos: float


def pagination(page: int, limit: int, total: int) -> Pagination:
    return Pagination(page=page, limit=limit, total=total, totalPages=(total + limit - 1) // limit)
