"""Every Redis key name onsale uses is built here, and only here.

Per-event keys share the hash tag ``{evt:<eventId>}`` so one event lives in one Redis
Cluster slot and every script touches keys of a single slot:

=====================================  =====================================================
``os:{evt:E}:inv``                     hash: event state and per-category stock, price, name
``os:{evt:E}:orders``                  hash: order id -> order JSON (live orders of E)
``os:{evt:E}:idem``                    hash: ``<userId>:<Idempotency-Key>`` -> order id
``os:{evt:E}:retired``                 sorted set: ``<orderId>:<version>`` stored -> when (ms)
``os:{evt:E}:due``                     sorted set: held order id -> deadline (ms, server clock)
``os:{evt:E}:timer:<orderId>``         string with a TTL; its expiry notification is the fast path
``os:{evt:E}:feed``                    stream: WebSocket feed (capped)
``os:{evt:E}:log``                     stream: order changes for the writer (trimmed by MINID)
``os:{evt:E}:lock``                    string with a TTL: the event's edit lock
=====================================  =====================================================

Global keys (never touched by a script): ``os:events`` (set of armed event ids),
``os:writer:dead`` (the writer's dead-letter stream), ``os:rl:*`` (rate limits) and
``os:user:{<userId>}:recent`` (a user's recent order ids, for read-your-writes) and
``os:user:{<userId>}:idem:<key>`` (a user's Idempotency-Key across events, with a TTL).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from engine.vocabulary import ID_PATTERN
from engine.vocabulary import ID_RE as ID_RE

PREFIX = "os"
EVENTS = f"{PREFIX}:events"
DEAD_LETTER = f"{PREFIX}:writer:dead"
WRITER_GROUP = "writer"

_ID = ID_PATTERN
_TIMER_RE = re.compile(rf"^{PREFIX}:\{{evt:({_ID})\}}:timer:({_ID}(?:\.{_ID})?)$")


def tag(event_id: str) -> str:
    return f"{PREFIX}:{{evt:{event_id}}}"


def inventory(event_id: str) -> str:
    return f"{tag(event_id)}:inv"


def orders(event_id: str) -> str:
    return f"{tag(event_id)}:orders"


def idempotency(event_id: str) -> str:
    return f"{tag(event_id)}:idem"


def retired(event_id: str) -> str:
    """Sorted set of finished orders the store has, due to leave the orders hash."""
    return f"{tag(event_id)}:retired"


def deadlines(event_id: str) -> str:
    return f"{tag(event_id)}:due"


def timer(event_id: str, order_id: str) -> str:
    return f"{tag(event_id)}:timer:{order_id}"


def edit_lock(event_id: str) -> str:
    """Serialises read-modify-write edits of an event's stored document."""
    return f"{tag(event_id)}:lock"


def feed(event_id: str) -> str:
    return f"{tag(event_id)}:feed"


def order_log(event_id: str) -> str:
    return f"{tag(event_id)}:log"


def user_orders(user_id: str) -> str:
    """Sorted set of a user's recent order ids (read-your-writes before the writer)."""
    return f"{PREFIX}:user:{{{user_id}}}:recent"


def user_idempotency(user_id: str, key: str) -> str:
    """A user's Idempotency-Key: the request's fingerprint and its order, for every event."""
    return f"{PREFIX}:user:{{{user_id}}}:idem:{key}"


def rate_limit(scope: str, subject: str, window: int) -> str:
    return f"{PREFIX}:rl:{scope}:{subject}:{window}"


class HoldKeys(NamedTuple):
    """The event keys every hold touches, in the hold script's KEYS order (but the timer)."""

    inventory: str
    orders: str
    idempotency: str
    deadlines: str
    feed: str
    order_log: str


@lru_cache(maxsize=4096)
def hold_keys(event_id: str) -> HoldKeys:
    """Built once per event and process: an on-sale sends thousands of holds per second
    to the same few events."""
    return HoldKeys(
        inventory(event_id),
        orders(event_id),
        idempotency(event_id),
        deadlines(event_id),
        feed(event_id),
        order_log(event_id),
    )


class TimerKey(NamedTuple):
    event_id: str
    order_id: str


def parse_timer(key: str) -> TimerKey | None:
    """The event and order of a timer key name, or None for any other key."""
    m = _TIMER_RE.match(key)
    return TimerKey(m.group(1), m.group(2)) if m else None


def event_of_feed(key: str) -> str | None:
    """The event id of a feed stream key, or None."""
    m = re.match(rf"^{PREFIX}:\{{evt:({_ID})\}}:feed$", key)
    return m.group(1) if m else None


def event_of_log(key: str) -> str | None:
    """The event id of an order-log stream key, or None."""
    m = re.match(rf"^{PREFIX}:\{{evt:({_ID})\}}:log$", key)
    return m.group(1) if m else None
