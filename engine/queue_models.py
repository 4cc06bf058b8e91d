"""The admission queue's value types (what an organizer configures, a queue's and a
buyer's state, the admitter's and the opening's results) and its public fairness rule:
the seed's commitment and the opening order anyone can recompute
(``onsale queue verify``, docs/queue.md). The engine side is :mod:`engine.queue`."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

ADMIT_BATCH = 100  # admissions per admit call


@dataclass(frozen=True)
class QueueSettings:
    """What an organizer configures (PUT .../queue)."""

    opens_at_ms: int
    pre_queue_minutes: float = 30
    admissions_per_minute: int | None = None
    admission_ms: int = 600_000
    tickets_per_admission: int = 2
    heartbeat_s: int = 30


@dataclass(frozen=True)
class QueueInfo:
    event_id: str
    state: str
    """PRE | ABIERTA | AGOTADA (OPENING shows as PRE; CERRADA is the API's, from the event)."""
    opens_at_ms: int
    waiting: int
    admitted: int
    commitment: str
    seed: str | None
    admissions_per_minute: int | None
    admission_ms: int
    tickets_per_admission: int
    heartbeat_s: int
    pre_queue_minutes: float
    outstanding: int = 0
    converted: int = 0
    lost: int = 0
    expired: int = 0
    sold_out_at_ms: int | None = None
    opened_at_ms: int | None = None
    opening_ms: int | None = None
    joined_pre: int = 0


@dataclass(frozen=True)
class Place:
    """One buyer's place (the API's ``estado`` is already derived: an admission past its
    expiry is PERDIDO, a waiting buyer of a sold-out queue AGOTADO)."""

    event_id: str
    user_id: str
    status: str
    position: int | None
    ahead: int | None
    eta_s: int | None
    tickets_left: int
    token: str | None = None
    token_expires_ms: int | None = None
    created: bool = False
    read_ms: int = 0
    """Redis's clock (ms) when the place was read: every write before it is in it (the
    real-time queue watch orders reads and feed entries by it)."""


@dataclass(frozen=True)
class AdmitResult:
    admitted: int
    state: str
    on_sale: int
    held: int
    outstanding: int
    waiting: int
    expired: int


@dataclass(frozen=True)
class OpeningResult:
    pre_queue: int
    placed: int
    seconds: float


def commitment_of(seed_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def opening_key(seed_hex: str, user_id: str) -> str:
    return hmac.new(bytes.fromhex(seed_hex), user_id.encode(), hashlib.sha256).hexdigest()


def opening_order(seed_hex: str, user_ids: list[str]) -> list[str]:
    """The join list in its opening order: ascending HMAC-SHA256(seed, usuarioId)."""
    key = bytes.fromhex(seed_hex)
    digest = {u: hmac.new(key, u.encode(), hashlib.sha256).digest() for u in user_ids}
    return sorted(user_ids, key=lambda u: (digest[u], u))
