"""Accounts, rush events and shared bookkeeping for the locust scenarios.

The seeding step registers buyers and organizers and creates the rush events once, before
any load runs, and writes everything (tokens included) to a JSON file: no bcrypt in the
hot loop. ``run_loadtest.py`` seeds against the server it starts (``BCRYPT_ROUNDS=4``);
the locustfile seeds a small pool itself when it finds no file for its host (web UI mode
against ``make run``).

The outcome ledger counts what the buyers saw (holds, sold-outs, confirms, tickets they
were told are theirs) so the run can be checked against the server's own sales figures.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SEED_FILE = Path("var/loadtest/seed.json")
SEED_FILE_ENV = "LOADTEST_SEED"
OUTCOMES_FILE_ENV = "LOADTEST_OUTCOMES"
PASSWORD = "Loadtest123"
CITIES = ("Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao")

# Rush events: categories sized in shares of the event's tickets, smallest first, so the
# small ones sell out early and buyers exercise the retry-with-another-category path.
RUSH_SHARES = (("VIP", 300.0, 0.05), ("Pista", 90.0, 0.20), ("Grada", 60.0, 0.25))


@dataclass
class Account:
    id: str
    email: str
    token: str
    role: str


@dataclass
class RushCategory:
    id: str
    nombre: str
    cantidadTotal: int


@dataclass
class RushEvent:
    id: str
    nombre: str
    categorias: list[RushCategory]

    def totals(self) -> dict[str, int]:
        return {c.id: c.cantidadTotal for c in self.categorias}


@dataclass
class Seed:
    host: str
    buyers: list[Account]
    organizers: list[Account]
    rush_events: list[RushEvent]
    created: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Seed:
        raw = json.loads(text)
        return cls(
            host=raw["host"],
            buyers=[Account(**a) for a in raw["buyers"]],
            organizers=[Account(**a) for a in raw["organizers"]],
            rush_events=[
                RushEvent(
                    id=e["id"],
                    nombre=e["nombre"],
                    categorias=[RushCategory(**c) for c in e["categorias"]],
                )
                for e in raw["rush_events"]
            ],
            created=raw.get("created", 0.0),
        )


def seed_path() -> Path:
    return Path(os.environ.get(SEED_FILE_ENV) or DEFAULT_SEED_FILE)


def outcomes_path() -> Path:
    return Path(os.environ.get(OUTCOMES_FILE_ENV) or seed_path().with_name("outcomes.json"))


# -- seeding -------------------------------------------------------------------------------


class SeedError(RuntimeError):
    """The server refused a seeding request."""


def _register(client: httpx.Client, email: str, role: str) -> Account:
    body = {"nombre": email.split("@")[0], "email": email, "password": PASSWORD, "role": role}
    for attempt in range(5):
        r = client.post("/api/auth/register", json=body)
        if r.status_code == 201:
            data = r.json()
            return Account(id=data["user"]["id"], email=email, token=data["token"], role=role)
        if r.status_code == 409:  # registered by an earlier seeding: log in instead
            r = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            if r.status_code == 200:
                data = r.json()
                return Account(id=data["user"]["id"], email=email, token=data["token"], role=role)
        if r.status_code == 429:  # make run keeps its rate limit: wait as told, bounded
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 10.0) * (attempt + 1))
            continue
        break
    raise SeedError(f"cannot register {email}: {r.status_code} {r.text[:200]}")


def create_rush_event(
    client: httpx.Client, organizer: Account, name: str, tickets: int
) -> RushEvent:
    cats = [
        {
            "nombre": label,
            "precio": price,
            "cantidadTotal": max(1, int(tickets * share)),
            "beneficios": [],
        }
        for label, price, share in RUSH_SHARES
    ]
    cats.append(
        {
            "nombre": "General",
            "precio": 40.0,
            "cantidadTotal": max(1, tickets - sum(c["cantidadTotal"] for c in cats)),
            "beneficios": [],
        }
    )
    r = client.post(
        "/api/events",
        headers={"Authorization": f"Bearer {organizer.token}"},
        json={
            "nombre": name,
            "descripcion": "locust on-sale rush",
            "fecha": "2031-06-01T20:00:00Z",
            "ubicacion": "Madrid Arena",
            "capacidadTotal": sum(c["cantidadTotal"] for c in cats),
            "precioBase": 40.0,
            "categorias": cats,
        },
    )
    if r.status_code != 201:
        raise SeedError(f"cannot create event {name}: {r.status_code} {r.text[:200]}")
    event = r.json()
    return RushEvent(
        id=event["id"],
        nombre=event["nombre"],
        categorias=[
            RushCategory(id=c["id"], nombre=c["nombre"], cantidadTotal=c["cantidadTotal"])
            for c in event["categorias"]
        ],
    )


def seed(
    host: str,
    *,
    buyers: int,
    organizers: int = 3,
    rush_events: int = 2,
    tickets_per_event: int = 2000,
    concurrency: int = 8,
    tag: str | None = None,
) -> Seed:
    """Register the accounts and create the rush events through the public API."""
    tag = tag or uuid.uuid4().hex[:8]
    with httpx.Client(base_url=host, timeout=60) as client:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            orgs = list(
                pool.map(
                    lambda i: _register(client, f"org{i}-{tag}@loadtest.example", "ORGANIZADOR"),
                    range(organizers),
                )
            )
            people = list(
                pool.map(
                    lambda i: _register(client, f"buyer{i}-{tag}@loadtest.example", "COMPRADOR"),
                    range(buyers),
                )
            )
        events = [
            create_rush_event(client, orgs[0], f"Rush {chr(65 + i)} {tag}", tickets_per_event)
            for i in range(rush_events)
        ]
    return Seed(host=host.rstrip("/"), buyers=people, organizers=orgs, rush_events=events)


# -- shared state of one locust process ----------------------------------------------------


class SeedPool:
    """The seed, and round-robin hand-out of its accounts to locust users."""

    def __init__(self) -> None:
        self.seed: Seed | None = None
        self._lock = threading.Lock()
        self._buyers: itertools.count[int] = itertools.count()
        self._organizers: itertools.count[int] = itertools.count()
        self.buyers_handed_out = 0

    def load(self, host: str) -> Seed | None:
        """The seed file's content when it was made for ``host``."""
        path = seed_path()
        if path.is_file():
            candidate = Seed.from_json(path.read_text())
            if candidate.host.rstrip("/") == host.rstrip("/"):
                self.seed = candidate
        return self.seed

    def ensure(self, host: str, buyers: int) -> Seed:
        with self._lock:
            stale = self.seed is None or self.seed.host != host.rstrip("/")
            if stale and self.load(host) is None:
                self.seed = seed(host, buyers=buyers)
                path = seed_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(self.seed.to_json())
            return self.seed  # type: ignore[return-value]

    def next_buyer(self) -> Account:
        assert self.seed is not None
        n = next(self._buyers)
        self.buyers_handed_out = n + 1
        return self.seed.buyers[n % len(self.seed.buyers)]

    def buyers_exclusive(self) -> bool:
        """Whether no two locust users share a buyer account (so far)."""
        return self.seed is not None and self.buyers_handed_out <= len(self.seed.buyers)

    def next_organizer(self) -> Account:
        assert self.seed is not None
        n = next(self._organizers)
        return self.seed.organizers[n % len(self.seed.organizers)]


POOL = SeedPool()


def require_seed() -> Seed:
    """The seed of this run; stops the calling locust user when seeding did not happen."""
    if POOL.seed is None:
        from locust.exception import StopUser

        raise StopUser()
    return POOL.seed


@dataclass
class Ledger:
    """What the buyers were told, per outcome and per (event, category)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    confirmed: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def confirm(self, order: dict[str, Any]) -> None:
        for t in order.get("tickets", []):
            self.confirmed[order["eventoId"]][t["categoriaId"]] += int(t["cantidad"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "confirmedTickets": {e: dict(c) for e, c in self.confirmed.items()},
        }

    def write(self, path: Path | None = None) -> Path:
        path = path or outcomes_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path


LEDGER = Ledger()


def json_of(response: Any) -> Any:
    """A response's JSON body, ``{}`` when there is none (connection error, empty body)."""
    try:
        return response.json()
    except Exception:
        return {}


def problem_code(body: Any) -> str:
    """The ``code`` of a problem+json body ('' when there is none)."""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def stream_ms(stream_id: str) -> int:
    return int(stream_id.partition("-")[0])


def stream_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
