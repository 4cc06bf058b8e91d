"""Small builders for the contract suite's documents."""

from __future__ import annotations

import itertools

from engine.models import Order, Ticket
from engine.vocabulary import Role
from persistence.store import Category, Event, User

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000
_seq = itertools.count(1)


def user(email: str, *, role: str = Role.BUYER, name: str = "Ana", id: str = "") -> User:
    return User(
        id=id or f"u{next(_seq):04d}",
        name=name,
        email=email,
        role=role,
        password_hash="$2b$12$" + "x" * 53,
        created_at=T0,
    )


def event(
    *,
    id: str = "",
    date: int = T0,
    location: str = "Palacio de Deportes, Madrid",
    name: str = "Concierto",
    categories: list[Category] | None = None,
) -> Event:
    return Event(
        id=id or f"e{next(_seq):04d}",
        name=name,
        description="Una noche inolvidable",
        date=date,
        location=location,
        capacity=1000,
        base_price=25.0,
        organizer_id="org1",
        categories=categories
        if categories is not None
        else [
            Category(id="vip", name="VIP", price=120.0, total=100, benefits=["Meet & greet"]),
            Category(id="gen", name="General", price=45.5, total=900),
        ],
        state="open",
        created_at=T0,
        updated_at=T0,
    )


def order(
    *,
    event_id: str = "E1",
    user_id: str = "u1",
    id: str = "",
    status: str = "RESERVED",
    created_at: int = T0,
    version: int = 1,
    tickets: list[tuple[str, int, float]] | None = None,
) -> Order:
    items = tickets if tickets is not None else [("gen", 2, 45.5)]
    lines = [Ticket(category_id=c, name=c.upper(), quantity=q, unit_price=p) for c, q, p in items]
    total = round(sum(q * p for _, q, p in items), 2)
    confirmed = status == "CONFIRMED"
    return Order(
        id=id or f"{event_id}.{next(_seq):016x}",
        event_id=event_id,
        user_id=user_id,
        tickets=lines,
        total=total,
        status=status,
        expires_at=created_at + 600_000,
        created_at=created_at,
        updated_at=created_at + version,
        confirmed_at=created_at + 1000 if confirmed else None,
        payment_method="card" if confirmed else None,
        transaction_id=f"tx-{version}" if confirmed else None,
        version=version,
    )


def at_version(o: Order, version: int, status: str) -> Order:
    """The same order at a later (or earlier) version in another state."""
    return order(
        event_id=o.event_id,
        user_id=o.user_id,
        id=o.id,
        status=status,
        created_at=o.created_at,
        version=version,
        tickets=[(t.category_id, t.quantity, t.unit_price) for t in o.tickets],
    )
