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
``os:{evt:E}:buyers``                  hash: user id -> tickets held plus sold (buyer cap)
``os:{evt:E}:wl``                      hash: waitlist entries (``e:<id>``), each buyer's
                                       entry per category (``u:<user>:<cat>``), ``seq``
``os:{evt:E}:wlq``                     sorted set (lex): waiting entries per category, FIFO
``os:{evt:E}:queue:waiting``           string: buyers waiting in the admission queue, kept
                                       by the queue; a hold extension is refused while > 0
``os:{evt:E}:queue``                   hash: the admission queue's settings, state and
                                       counters, each buyer's place (``u:<user>``) and each
                                       admission token's user (``t:<token>``)
``os:{evt:E}:queue:pre``               sorted set: user -> joined (ms): the pre-queue's join
                                       list, frozen when the opening starts
``os:{evt:E}:queue:line``              sorted set: user -> seq: buyers waiting in line
``os:{evt:E}:queue:hb``                sorted set: user -> last heartbeat (ms), every waiter
``os:{evt:E}:queue:adm``               sorted set: token -> expiry (ms): admitted, not holding
``os:{evt:E}:queue:recent``            sorted set: token -> admitted (ms), the last minute
=====================================  =====================================================

A waitlist offer is an order made inside a releasing script, whose timer key must be among
the script's KEYS: the caller generates :data:`OFFER_SLOTS` fresh order ids per call and
passes them with their timer keys (:func:`offer_slots`); the script uses those it needs.

Global keys (never touched by a script): ``os:events`` (set of armed event ids),
``os:writer:dead`` (the writer's dead-letter stream), ``os:rl:*`` (rate limits) and
``os:user:{<userId>}:recent`` (a user's recent order ids, for read-your-writes) and
``os:user:{<userId>}:idem:<key>`` (a user's Idempotency-Key across events, with a TTL) and
``os:queues`` (set of event ids with an admission queue: the admitter's work list) and
``os:user:{<userId>}:waitlists`` (events the user waits in: the real-time hub follows
their feeds for the user's room, so a ``waitlist:offer`` reaches it).
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


def buyers(event_id: str) -> str:
    """Hash: user id -> tickets the user holds plus has bought in the event."""
    return f"{tag(event_id)}:buyers"


def waitlist(event_id: str) -> str:
    """Hash: the event's waitlist entries and each buyer's entry per category."""
    return f"{tag(event_id)}:wl"


def waitlist_queue(event_id: str) -> str:
    """Sorted set (lex order): ``<categoryId>:<seq>:<entryId>`` of the waiting entries."""
    return f"{tag(event_id)}:wlq"


def queue_waiting(event_id: str) -> str:
    """String: how many buyers wait in the event's admission queue (the queue keeps it;
    the hold-extension script reads it: ``contested`` while > 0)."""
    return f"{tag(event_id)}:queue:waiting"


QUEUES = f"{PREFIX}:queues"


class QueueKeys(NamedTuple):
    """An event's admission-queue keys (lua/lib/queue.lua documents their fields)."""

    queue: str
    waiting: str
    pre: str
    line: str
    heartbeats: str
    admissions: str
    recent: str


def queue_keys(event_id: str) -> QueueKeys:
    t = tag(event_id)
    return QueueKeys(
        f"{t}:queue",
        queue_waiting(event_id),
        f"{t}:queue:pre",
        f"{t}:queue:line",
        f"{t}:queue:hb",
        f"{t}:queue:adm",
        f"{t}:queue:recent",
    )


def user_waitlists(user_id: str) -> str:
    """Sorted set: event id -> when the user joined a waitlist of it (ms)."""
    return f"{PREFIX}:user:{{{user_id}}}:waitlists"


OFFER_SLOTS = 4
"""Fresh order ids a releasing script may use for waitlist offers in one call."""


def offer_slots(event_id: str, order_ids: list[str]) -> list[str]:
    """The timer keys of the fresh order ids passed to a releasing script."""
    return [timer(event_id, order_id) for order_id in order_ids]


class HoldKeys(NamedTuple):
    """The event keys every hold touches, in the hold script's KEYS order (but the timer)."""

    inventory: str
    orders: str
    idempotency: str
    deadlines: str
    feed: str
    order_log: str
    buyers: str


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
        buyers(event_id),
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


WEBHOOK_GROUP = "webhooks"  # the webhook dispatcher's consumer group on the order logs


def webhook_sold_out(event_id: str) -> str:
    """String: set while the event's ``event.sold_out`` webhook has been sent (cleared
    when stock comes back), so one sell-out notifies once. Never touched by a script."""
    return f"{tag(event_id)}:wh:soldout"


WEBHOOKS_ON = f"{PREFIX}:webhooks:on"
"""String: set once webhooks are in use (an endpoint registered or a dispatcher started).
While it exists, the order writer creates the ``WEBHOOK_GROUP`` on each log as it creates
its own, so no entry is trimmed before the webhook dispatcher first reads that log."""
