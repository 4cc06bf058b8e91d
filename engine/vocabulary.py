"""The words every layer shares: order states, roles, the id patterns, byte-to-text.

One definition each, used by the engine, the store adapters, the services, the wire
schemas and the real-time protocol. ``StrEnum`` members compare equal to the plain
strings the Lua scripts and the stores write, so a decoded order's ``estado`` (a ``str``)
is checked with ``order.status == OrderStatus.RESERVED`` without converting it.
"""

from __future__ import annotations

import re
from enum import StrEnum


class OrderStatus(StrEnum):
    """An order's life: ``RESERVED`` -> ``CONFIRMED`` | ``EXPIRED`` | ``CANCELLED``."""

    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self is not OrderStatus.RESERVED


class Role(StrEnum):
    ADMIN = "ADMIN"
    ORGANIZER = "ORGANIZADOR"
    BUYER = "COMPRADOR"


ROLES: tuple[Role, ...] = tuple(Role)

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
"""A resource id (event, category, user): what the key layout and every route accept."""
ORDER_ID_PATTERN = rf"{ID_PATTERN}\.{ID_PATTERN}"
"""An order id: ``<eventId>.<suffix>``, so an order is found without a lookup table."""
ID_RE = re.compile(rf"^{ID_PATTERN}$")
ORDER_ID_RE = re.compile(rf"^{ORDER_ID_PATTERN}$")


def text(value: object) -> str:
    """A Redis reply (bytes without decode_responses) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
