"""The seed's demo data (users and two events), created once: running it again changes
nothing."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from api.security import Passwords
from api.services.recovery import category_specs
from engine.core import Engine
from engine.models import new_id
from engine.vocabulary import Role
from persistence.aio import AsyncStore
from persistence.store import Category, Event, User

log = logging.getLogger(__name__)

USERS: list[tuple[str, str, str, Role]] = [
    ("Admin", "admin@test.com", "Admin123!", Role.ADMIN),
    ("Organizador", "organizador@test.com", "Org123!", Role.ORGANIZER),
    ("Comprador", "comprador@test.com", "User123!", Role.BUYER),
]


def _ahead(days: int, hour: int) -> str:
    """A date ``days`` from today at ``hour`` UTC: demo events must be in the future (a
    past event is not on sale)."""
    from datetime import UTC, datetime, timedelta

    day = datetime.now(UTC).date() + timedelta(days=days)
    return f"{day.isoformat()}T{hour:02d}:00:00Z"


EVENTS = [
    (
        "Rock Concert",
        "The best concert of the year",
        _ahead(days=60, hour=20),
        "Madrid Arena",
        1000,
        50.0,
        [
            ("VIP", 150.0, 100, ["Backstage access", "Meet & greet"]),
            ("General", 50.0, 900, ["General admission"]),
        ],
    ),
    (
        "Tech Conference",
        "Two days of talks and workshops",
        _ahead(days=150, hour=9),
        "Barcelona",
        500,
        80.0,
        [
            ("Premium", 200.0, 50, ["Front rows", "Workshop access"]),
            ("Student", 30.0, 200, ["Student ID required"]),
            ("General", 80.0, 250, ["General admission"]),
        ],
    ),
]


@dataclass
class SeedReport:
    users_created: int = 0
    events_created: int = 0


def _ms(iso_text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() * 1000)


async def seed(store: AsyncStore, engine: Engine, passwords: Passwords) -> SeedReport:
    report = SeedReport()
    now = int(time.time() * 1000)
    organizer_id = ""
    for name, email, password, role in USERS:
        user = await store.get_user_by_email(email)
        if user is None:
            user = User(
                id=new_id(),
                name=name,
                email=email,
                role=role,
                password_hash=await passwords.hash(password),
                created_at=now,
            )
            await store.create_user(user)
            report.users_created += 1
        if role is Role.ORGANIZER:
            organizer_id = user.id
    existing = {e.name for e in await store.all_events()}
    for name, description, date, location, capacity, base, cats in EVENTS:
        if name in existing:
            continue
        event = Event(
            id=new_id(),
            name=name,
            description=description,
            date=_ms(date),
            location=location,
            capacity=capacity,
            base_price=base,
            organizer_id=organizer_id,
            categories=[
                Category(id=new_id(), name=n, price=p, total=t, benefits=b) for n, p, t, b in cats
            ],
            state="open",
            created_at=now,
            updated_at=now,
        )
        await store.create_event(event)
        await engine.arm_event(event.id, category_specs(event, {}), starts_at=event.date)
        report.events_created += 1
    log.info("seed: %d users and %d events created", report.users_created, report.events_created)
    return report
