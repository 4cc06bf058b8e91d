"""Key layout: one hash tag per event, and the parsers invert the builders."""

from __future__ import annotations

import re

from engine import keys
from engine.models import event_of_order, iso, new_id, new_order_id


def _slot_tag(key: str) -> str:
    m = re.search(r"\{([^}]*)\}", key)
    assert m, key
    return m.group(1)


def test_every_event_key_shares_the_hash_tag() -> None:
    e, o = "abc123", "abc123.ff00"
    built = [
        keys.inventory(e),
        keys.orders(e),
        keys.idempotency(e),
        keys.deadlines(e),
        keys.timer(e, o),
        keys.feed(e),
        keys.order_log(e),
    ]
    assert {_slot_tag(k) for k in built} == {"evt:abc123"}
    assert len(set(built)) == len(built)


def test_timer_key_round_trip() -> None:
    event_id = new_id()
    order_id = new_order_id(event_id)
    parsed = keys.parse_timer(keys.timer(event_id, order_id))
    assert parsed == keys.TimerKey(event_id, order_id)
    assert keys.parse_timer(keys.inventory(event_id)) is None
    assert keys.parse_timer("something:else") is None


def test_order_ids_carry_their_event() -> None:
    event_id = new_id()
    assert event_of_order(new_order_id(event_id)) == event_id
    for bad in ("", "noevent", ".x", "x.", "a/b.c", "a.b.c", "../etc.x"):
        assert event_of_order(bad) is None, bad


def test_iso_times() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_795_847_350_011) == "2026-11-28T06:29:10.011Z"


def test_cached_hold_keys_are_the_builders_keys() -> None:
    e = "evcache1"
    ks = keys.hold_keys(e)
    assert ks == (
        keys.inventory(e),
        keys.orders(e),
        keys.idempotency(e),
        keys.deadlines(e),
        keys.feed(e),
        keys.order_log(e),
        keys.buyers(e),
    )
    assert keys.hold_keys(e) is ks  # built once per event
    assert keys.hold_keys("evcache2").inventory == keys.inventory("evcache2")
