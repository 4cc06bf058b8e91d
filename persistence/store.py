"""The store port: the domain documents onsale persists and the one interface every adapter
implements (:class:`Store`). Picking an adapter is :func:`persistence.factory.open_store`;
this module imports none.

Attribute names are English; the names on the wire (JSON, stored documents) are the
Spanish ones of the HTTP contract. Times are epoch milliseconds (ints). Orders are the
engine's :class:`engine.models.Order`, stored as the scripts wrote them.

Adapters are synchronous (SQLite from the standard library, pymongo's ``MongoClient``);
async code goes through :class:`persistence.aio.AsyncStore`, which runs them in a bounded
thread pool. Every adapter must pass ``tests/contract/``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Annotated, Literal, Protocol

import msgspec

from engine.models import Order
from engine.vocabulary import ROLES, OrderStatus

RoleName = Annotated[str, msgspec.Meta(pattern=f"^({'|'.join(ROLES)})$")]
"""A stored role: the plain string of one of :data:`engine.vocabulary.ROLES`."""

EventState = Literal["open", "closed"]

SQLITE_FILENAME = "onsale.db"


class User(msgspec.Struct, kw_only=True):
    """A registered user. ``password_hash`` is stored, never sent to a client."""

    id: str
    name: str = msgspec.field(name="nombre")
    email: str
    role: RoleName
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
    max_per_buyer: int | None = msgspec.field(default=None, name="maxPorComprador")
    """Tickets per buyer across their orders of the event, held plus sold (None: no cap)."""
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

    def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        """Which of ``user_ids`` are users (one query: the auth cache's batched check)."""

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

        A stored order is replaced only by one that :func:`supersedes` it (a higher
        version; the same version unless both are final in different states; never a
        CONFIRMED by anything but a CONFIRMED), so replaying an old stream entry never
        regresses it. Returns how many orders were inserted or replaced (an order
        skipped because the stored one wins is not counted).
        """

    def get_order(self, order_id: str) -> Order | None: ...

    def get_orders(self, order_ids: Collection[str]) -> list[Order]:
        """The stored orders among ``order_ids`` (any order; absent ids are skipped)."""

    def existing_order_ids(self, order_ids: Collection[str]) -> set[str]:
        """Which of ``order_ids`` are stored (one query on the ids alone, no document read:
        a buyer's order list asks it of their recent orders)."""

    def list_user_orders(
        self,
        user_id: str,
        page: int,
        limit: int,
        *,
        before: int = 0,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        """A user's orders, newest first (created_at desc, id desc), and their total; the
        page is preceded by up to ``before`` rows (fewer near the top: the rows a reader
        adding orders of its own above the page may push down into it); ``exclude_ids``
        are left out of the rows and the total (readers overlaying newer copies)."""

    def list_orders(
        self,
        page: int,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        """Orders (optionally of one state and/or event), newest first, and their total;
        ``exclude_ids`` are left out of both (readers overlaying newer copies)."""

    def order_stats(self, *, exclude_ids: Collection[str] | None = None) -> OrderStats:
        """Orders by state; tickets and revenue (the orders' totals, what buyers paid)
        of CONFIRMED orders; ``exclude_ids`` left out."""

    def event_sales(
        self, event_id: str, *, exclude_ids: Collection[str] | None = None
    ) -> dict[str, CategorySales]:
        """Per category id: tickets sold and revenue (sum of quantity x the unit price
        paid) from the event's CONFIRMED orders; ``exclude_ids`` left out."""

    def sold_counts(self, event_id: str) -> dict[str, int]:
        """Per category id: tickets in CONFIRMED orders (re-arming Redis after a loss)."""

    def orders_after(
        self,
        after: tuple[int, str] | None,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
    ) -> list[Order]:
        """Up to ``limit`` orders (optionally of one state and/or event), newest first
        (created_at desc, id desc), strictly after the keyset ``after`` = (created_at, id)
        of the last one already read: constant-cost pages for exports of any size."""


def page_offset(page: int, limit: int) -> int:
    """The row offset of a 1-based page; ValueError for a page or limit below 1."""
    if page < 1 or limit < 1:
        raise ValueError(f"page and limit must be >= 1 (got page={page}, limit={limit})")
    return (page - 1) * limit


def page_rows(page: int, limit: int, before: int = 0) -> tuple[int, int]:
    """(offset, count) of the rows of a 1-based page preceded by up to ``before`` rows;
    ValueError for a page or limit below 1, or a negative ``before``."""
    if before < 0:
        raise ValueError(f"before must be >= 0 (got {before})")
    offset = page_offset(page, limit)
    start = max(0, offset - before)
    return start, offset + limit - start


CONFIRMED = OrderStatus.CONFIRMED.value
RESERVED = OrderStatus.RESERVED.value


def supersedes(new: Order, old: Order) -> bool:
    """Whether ``new`` replaces ``old`` (two copies of one order): the store's rule, which
    every adapter applies in its upsert and readers apply when they overlay copies.

    * A sale is final: a CONFIRMED copy always wins over one in another state, whatever
      the versions. After Redis lost its last writes (a crash under ``everysec``, a
      failover to a lagging replica) a hold whose confirmation was lost is released (or
      extended) at the sale's version or later; the store keeps the sale, in whichever
      order the two copies arrive.
    * Otherwise a higher version wins; at the same version ``new`` wins over a RESERVED
      or over the same state (a replay), never over another final state (the first one
      stored stays: an EXPIRED never turns CANCELLED at its own version, nor back).
    """
    if (old.status == CONFIRMED) != (new.status == CONFIRMED):
        return new.status == CONFIRMED
    if new.version != old.version:
        return new.version > old.version
    return old.status in (RESERVED, new.status)


def latest_versions(orders: Iterable[Order]) -> list[Order]:
    """One order per id, the copy that :func:`supersedes` the others (the later one on a
    tie), in first-seen order."""
    latest: dict[str, Order] = {}
    for order in orders:
        seen = latest.get(order.id)
        if seen is None or supersedes(order, seen):
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
