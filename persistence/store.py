"""The store port: the domain documents onsale persists and the one interface every adapter
implements (:class:`Store`), plus the factory that picks an adapter from the configuration.

Attribute names are English; the names on the wire (JSON, stored documents) are the
Spanish ones of the HTTP contract. Times are epoch milliseconds (ints). Orders are the
engine's :class:`engine.models.Order`, stored as the scripts wrote them.

Adapters are synchronous (SQLite from the standard library, pymongo's ``MongoClient``);
async code goes through :class:`persistence.aio.AsyncStore`, which runs them in a bounded
thread pool. Every adapter must pass ``tests/contract/``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from engine.models import Order

Role = Literal["ADMIN", "ORGANIZADOR", "COMPRADOR"]
ROLES: tuple[Role, ...] = ("ADMIN", "ORGANIZADOR", "COMPRADOR")

EventState = Literal["open", "closed"]

RESERVED = "RESERVED"
CONFIRMED = "CONFIRMED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"
ORDER_STATES = (RESERVED, CONFIRMED, EXPIRED, CANCELLED)

SQLITE_FILENAME = "onsale.db"


class User(msgspec.Struct, kw_only=True):
    """A registered user. ``password_hash`` is stored, never sent to a client."""

    id: str
    name: str = msgspec.field(name="nombre")
    email: str
    role: Role
    password_hash: str = msgspec.field(name="passwordHash")
    created_at: int = msgspec.field(name="creadoEn")


class Category(msgspec.Struct, kw_only=True):
    """A ticket category of an event (its live stock lives in Redis)."""

    id: str
    name: str = msgspec.field(name="nombre")
    price: float = msgspec.field(name="precio")
    total: int = msgspec.field(name="cantidadTotal")
    benefits: list[str] = msgspec.field(default_factory=list, name="beneficios")


class Event(msgspec.Struct, kw_only=True):
    id: str
    name: str = msgspec.field(name="nombre")
    description: str = msgspec.field(default="", name="descripcion")
    date: int = msgspec.field(name="fecha")
    location: str = msgspec.field(name="ubicacion")
    capacity: int = msgspec.field(name="capacidadTotal")
    base_price: float = msgspec.field(name="precioBase")
    organizer_id: str = msgspec.field(name="organizadorId")
    categories: list[Category] = msgspec.field(default_factory=list, name="categorias")
    state: EventState = "open"
    created_at: int = msgspec.field(name="creadoEn")
    updated_at: int = msgspec.field(name="actualizadoEn")


class OrderStats(msgspec.Struct, kw_only=True):
    """Orders by state; tickets sold and revenue count CONFIRMED orders only."""

    by_status: dict[str, int]
    tickets_sold: int
    revenue: float


class CategorySales(msgspec.Struct, kw_only=True):
    """Tickets sold and revenue of one category, from CONFIRMED orders."""

    sold: int
    revenue: float


class Store(Protocol):
    """What onsale needs from a database. Every method is synchronous and thread-safe.

    Failures are :mod:`persistence.errors`: ``StoreUnavailable`` when the backend cannot be
    reached (retry later), ``StoreError`` for the rest. Pages are 1-based; ``limit`` >= 1.
    """

    def ping(self) -> None:
        """Return when the backend answers; raise ``StoreUnavailable`` otherwise."""

    def close(self) -> None: ...

    # users -----------------------------------------------------------------------------
    def create_user(self, user: User) -> None:
        """Insert a new user; ``DuplicateEmail`` when the email (any case) is taken."""

    def get_user(self, user_id: str) -> User | None: ...

    def get_user_by_email(self, email: str) -> User | None:
        """Case-insensitive lookup."""

    def delete_user(self, user_id: str) -> bool: ...

    def count_users_by_role(self) -> dict[str, int]: ...

    # events ----------------------------------------------------------------------------
    def create_event(self, event: Event) -> None:
        """Insert a new event; ``DuplicateId`` when the id exists."""

    def get_event(self, event_id: str) -> Event | None: ...

    def replace_event(self, event: Event) -> bool:
        """Replace a stored event (same id). False when there is none."""

    def delete_event(self, event_id: str) -> bool: ...

    def list_events(
        self,
        page: int,
        limit: int,
        *,
        date_from_ms: int | None = None,
        date_to_ms: int | None = None,
        location: str | None = None,
        ids: Collection[str] | None = None,
    ) -> tuple[list[Event], int]:
        """One page of events sorted by date then id, and the total matching.

        ``date_from_ms`` is inclusive, ``date_to_ms`` exclusive; ``location`` is a
        case-insensitive substring; ``ids`` restricts to those events.
        """

    def all_events(self) -> list[Event]:
        """Every event (arming Redis at start-up), sorted by date then id."""

    def count_events(self) -> int: ...

    # orders ----------------------------------------------------------------------------
    def upsert_orders(self, orders: list[Order]) -> int:
        """Insert or replace orders by id, all or nothing.

        A stored order is replaced only by a version >= its own, so replaying an old
        stream entry never regresses it. Returns how many orders were inserted or
        replaced (an order skipped because a newer version is stored is not counted).
        """

    def get_order(self, order_id: str) -> Order | None: ...

    def list_user_orders(self, user_id: str, page: int, limit: int) -> tuple[list[Order], int]:
        """A user's orders, newest first (created_at desc, id desc), and their total."""

    def list_orders(
        self,
        page: int,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
    ) -> tuple[list[Order], int]:
        """Orders (optionally of one state and/or event), newest first, and their total."""

    def order_stats(self) -> OrderStats: ...

    def event_sales(self, event_id: str) -> dict[str, CategorySales]:
        """Per category id: tickets sold and revenue from the event's CONFIRMED orders."""

    def sold_counts(self, event_id: str) -> dict[str, int]:
        """Per category id: tickets in CONFIRMED orders (re-arming Redis after a loss)."""


def page_offset(page: int, limit: int) -> int:
    """The row offset of a 1-based page; ValueError for a page or limit below 1."""
    if page < 1 or limit < 1:
        raise ValueError(f"page and limit must be >= 1 (got page={page}, limit={limit})")
    return (page - 1) * limit


def latest_versions(orders: Iterable[Order]) -> list[Order]:
    """One order per id, the highest version (the later one on a tie), in first-seen order."""
    latest: dict[str, Order] = {}
    for order in orders:
        seen = latest.get(order.id)
        if seen is None or order.version >= seen.version:
            latest[order.id] = order
    return list(latest.values())


def ticket_count(order: Order) -> int:
    return sum(t.quantity for t in order.tickets)


def fold(text: str) -> str:
    """The case-insensitive form both adapters store and compare (emails, locations)."""
    return text.casefold()


def money(value: float | None) -> float:
    """Sums of prices, rounded to cents so every adapter reports the same figure."""
    return round(float(value or 0.0), 2)


def open_store(
    mongodb_uri: str | None,
    data_dir: Path,
    *,
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> Store:
    """The MongoDB adapter when a URI is configured, else the embedded SQLite store in
    ``data_dir/onsale.db``. Adapters are imported lazily (pymongo only when used)."""
    if mongodb_uri:
        from persistence.mongo import MongoStore

        return MongoStore(mongodb_uri)
    from persistence.sqlite import SQLiteStore

    return SQLiteStore(data_dir / SQLITE_FILENAME, synchronous=sqlite_synchronous)
