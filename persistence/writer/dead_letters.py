"""Poison entries: which ones are (:func:`triage`), the dead-letter stream they go to
(:func:`dead_letter`), so they never block a log, and putting them back
(:func:`replay_dead_letters`, ``onsale writer --replay-dead``).

Poison is an entry that cannot be decoded or validated as an order of its log's event:
nothing else. How often an entry was delivered says nothing about it (restarts, reclaims
and store outages all redeliver valid entries), and a store that refuses or cannot take
a valid order is waited out by the writer, never dead-lettered. A dead letter keeps the
reason, its delivery count and the consumer that parked it, and the original fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from engine import keys
from engine.models import Order, decode_order, event_of_order
from engine.vocabulary import OrderStatus, text
from persistence.writer.streams import ORDER_FIELD, Entry

log = logging.getLogger(__name__)

DEAD_LETTER_PREFIX = "entry:"  # original fields are copied as "entry:<name>"
_STATES = frozenset(s.value for s in OrderStatus)


def invalid(order: Order, stream: str) -> str | None:
    """Why a decoded order cannot be stored from ``stream``, or None when it can."""
    event_id = event_of_order(order.id)
    if event_id is None:
        return f"invalid order id {order.id!r}"
    if order.event_id != event_id:
        return f"order {order.id} names event {order.event_id!r}"
    log_event = keys.event_of_log(stream)
    if log_event is not None and log_event != event_id:
        return f"order {order.id} in the log of event {log_event!r}"
    if order.status not in _STATES:
        return f"unknown state {order.status!r}"
    if order.version < 1:
        return f"version {order.version} (>= 1 expected)"
    return None


def triage(entries: Sequence[Entry]) -> tuple[list[tuple[Entry, Order]], list[tuple[Entry, str]]]:
    """The entries' decoded orders, and the poison among them with the reason: no order
    field, undecodable, or not a valid order of the log's event (:func:`invalid`)."""
    dead: list[tuple[Entry, str]] = []
    decoded: list[tuple[Entry, Order]] = []
    for e in entries:
        raw = e.field(ORDER_FIELD)
        if raw is None:
            dead.append((e, f"no {ORDER_FIELD!r} field"))
            continue
        try:
            order = decode_order(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            dead.append((e, f"undecodable order: {exc}"))
            continue
        problem = invalid(order, e.stream)
        if problem is None:
            decoded.append((e, order))
        else:
            dead.append((e, f"invalid order: {problem}"))
    return decoded, dead


async def dead_letter(
    redis: Redis,
    dead: Sequence[tuple[Entry, str]],
    counts: Mapping[tuple[str, str], int],
    *,
    consumer: str,
) -> None:
    """Copy ``(entry, reason)`` pairs to the dead-letter stream, in one pipeline."""
    pipe = redis.pipeline(transaction=False)
    for e, error in dead:
        fields: dict[Any, Any] = {
            "stream": e.stream,
            "id": e.id,
            "error": error[:1000],
            "deliveries": counts.get((e.stream, e.id), 1),
            "consumer": consumer,
        }
        for name, value in e.fields.items():
            fields[DEAD_LETTER_PREFIX + text(name)] = value
        pipe.xadd(keys.DEAD_LETTER, fields)
        log.error("dead-lettered %s %s: %s", e.stream, e.id, error)
    await pipe.execute()


async def dead_letter_count(redis: Redis) -> int:
    """How many entries wait in the dead-letter stream (/health/ready, /metrics)."""
    return int(await redis.xlen(keys.DEAD_LETTER))


@dataclass
class Replayed:
    """What :func:`replay_dead_letters` did: dead letters put back into their logs, and
    those left in place (still poison, or with no log to go back to)."""

    replayed: int = 0
    kept: int = 0


async def replay_dead_letters(redis: Redis, *, page: int = 500) -> Replayed:
    """Put every dead letter that holds a valid order back into its order log (a new
    entry with the original fields) and delete it from the dead-letter stream; the
    writer then stores it like any entry. Idempotent: a replay interrupted between the
    XADD and the XDEL leaves a duplicate entry, and storing an order twice changes
    nothing (upserts by id and version). Dead letters that are still poison, or do not
    name their log, stay where they are (``kept``)."""
    done = Replayed()
    cursor = "-"
    while True:
        rows = await redis.xrange(keys.DEAD_LETTER, min=cursor, max="+", count=page)
        if not rows:
            return done
        for dead_id, fields in rows:
            cursor = "(" + text(dead_id)
            named = {text(k): v for k, v in (fields or {}).items()}
            stream = text(named["stream"]) if "stream" in named else ""
            original: dict[bytes | str, bytes | str] = {
                name[len(DEAD_LETTER_PREFIX) :]: value
                for name, value in named.items()
                if name.startswith(DEAD_LETTER_PREFIX)
            }
            entry = Entry(stream, text(named.get("id", "0-0")), original)
            if keys.event_of_log(stream) is None or triage([entry])[1]:
                done.kept += 1
                continue
            await redis.xadd(stream, original)  # type: ignore[arg-type]
            await redis.xdel(keys.DEAD_LETTER, text(dead_id))
            done.replayed += 1
            log.info("replayed dead letter %s into %s", text(dead_id), stream)
