"""Typed shapes the engine returns. Times are epoch milliseconds of the Redis server clock."""

from __future__ import annotations

import os
import random
import secrets
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from engine import keys


class Ticket(msgspec.Struct, kw_only=True):
    category_id: str = msgspec.field(name="categoriaId")
    name: str = msgspec.field(name="nombre")
    quantity: int = msgspec.field(name="cantidad")
    unit_price: float = msgspec.field(name="precioUnitario")


class Order(msgspec.Struct, kw_only=True):
    """An order as the scripts store it (JSON in the event's orders hash)."""

    id: str
    event_id: str = msgspec.field(name="eventoId")
    user_id: str = msgspec.field(name="usuarioId")
    tickets: list[Ticket]
    total: float
    status: str = msgspec.field(name="estado")
    expires_at: int = msgspec.field(name="expiraEn")
    created_at: int = msgspec.field(name="creadoEn")
    updated_at: int = msgspec.field(default=0, name="actualizadoEn")
    confirmed_at: int | None = msgspec.field(default=None, name="confirmadoEn")
    payment_method: str | None = msgspec.field(default=None, name="metodoPago")
    transaction_id: str | None = msgspec.field(default=None, name="transactionId")
    version: int = msgspec.field(default=0, name="v")


class HoldResult(msgspec.Struct):
    order: Order
    created: bool


class CategoryStock(msgspec.Struct, kw_only=True):
    id: str
    name: str
    price: float
    total: int
    available: int
    held: int
    sold: int
    set_aside: int = 0
    """Returned tickets kept for the waitlist: not in ``available`` (what is on sale)."""
    waiting: int = 0
    """Waitlist entries still waiting."""


class EventStock(msgspec.Struct, kw_only=True):
    event_id: str
    state: str
    low_stock_threshold: float
    max_per_order: int
    categories: list[CategoryStock]
    max_per_buyer: int | None = None

    def category(self, category_id: str) -> CategoryStock | None:
        return next((c for c in self.categories if c.id == category_id), None)


class WaitlistEntry(msgspec.Struct, kw_only=True):
    """A buyer's place on a category's waitlist, as the scripts store it."""

    id: str
    event_id: str = msgspec.field(name="eventoId")
    category_id: str = msgspec.field(name="categoriaId")
    user_id: str = msgspec.field(name="usuarioId")
    quantity: int = msgspec.field(name="cantidad")
    status: str = msgspec.field(name="estado")
    created_at: int = msgspec.field(name="creadoEn")
    order_id: str | None = msgspec.field(default=None, name="ordenId")
    offer_expires_at: int | None = msgspec.field(default=None, name="ofertaExpiraEn")
    position: int | None = None
    """1-based place among the category's waiting entries (ESPERANDO only)."""


_entry_decoder = msgspec.json.Decoder(WaitlistEntry)


def decode_entry(raw: bytes | str, position: int | None = None) -> WaitlistEntry:
    entry = _entry_decoder.decode(raw)
    entry.position = position
    return entry


class Offer(msgspec.Struct, frozen=True):
    """A waitlist offer a releasing script made: the new order, its buyer, its deadline."""

    order_id: str
    user_id: str
    expires_at: int


class CategorySpec(msgspec.Struct, kw_only=True):
    """What arming needs to know of one category (sold > 0 when re-arming from the store)."""

    id: str
    name: str
    price: float
    total: int
    sold: int = 0


_order_decoder = msgspec.json.Decoder(Order)


def decode_order(raw: bytes | str) -> Order:
    return _order_decoder.decode(raw)


def iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as every API time is written."""
    return f"{_iso_second(ms // 1000)}.{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """The date and time part: every order of an on-sale second shares it."""
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def new_id() -> str:
    """A fresh 24-hex-digit id (the shape of a MongoDB ObjectId, which clients expect)."""
    return secrets.token_hex(12)


def new_order_id(event_id: str) -> str:
    """Order ids carry their event id, so an order is found without a lookup table.

    64 random bits from a per-process generator seeded by the OS (re-seeded in a forked
    child so two workers never share a sequence): ``secrets.token_hex`` makes a getrandom
    system call per id, a measurable part of a hold. The ids are as unique as before;
    nothing relies on them being unguessable (every read checks the owner)."""
    return f"{event_id}.{_order_rng.getrandbits(64):016x}"


_order_rng = random.Random(secrets.randbits(128))


def _reseed_order_ids() -> None:
    _order_rng.seed(secrets.randbits(128))


os.register_at_fork(after_in_child=_reseed_order_ids)


def event_of_order(order_id: str) -> str | None:
    event_id, dot, suffix = order_id.partition(".")
    if not dot or not keys.ID_RE.match(event_id) or not keys.ID_RE.match(suffix):
        return None
    return event_id
