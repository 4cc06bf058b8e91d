"""The store contract: every adapter (``sqlite``, ``mongo``) must pass every test here."""

from __future__ import annotations

from typing import Any

import pytest

from persistence.errors import DuplicateEmail, DuplicateId, StoreError
from persistence.store import Category, CategorySales, OrderStats, Store
from tests.contract import factories as f
from tests.contract.conftest import Backend

# -- users ---------------------------------------------------------------------------------


def test_user_round_trip(store: Store) -> None:
    ana = f.user("ana@example.com", role="ORGANIZADOR", name="Ana Pérez")
    store.create_user(ana)
    assert store.get_user(ana.id) == ana
    assert store.get_user("nobody") is None


def test_user_lookup_by_email_ignores_case(store: Store) -> None:
    ana = f.user("Ana.Garcia@Example.COM")
    store.create_user(ana)
    found = store.get_user_by_email("ana.garcia@example.com")
    assert found == ana
    assert found is not None and found.email == "Ana.Garcia@Example.COM"  # kept as given
    assert store.get_user_by_email("ANA.GARCIA@EXAMPLE.COM") == ana
    assert store.get_user_by_email("ana.garcia@example.co") is None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("luis@example.com", "LUIS@example.com"),
        ("álvaro@correo.es", "ÁLVARO@CORREO.ES"),  # not only ASCII folds
    ],
)
def test_duplicate_email_is_refused_whatever_its_case(
    store: Store, first: str, second: str
) -> None:
    original = f.user(first)
    store.create_user(original)
    with pytest.raises(DuplicateEmail):
        store.create_user(f.user(second))
    assert store.count_users_by_role() == {"COMPRADOR": 1}
    assert store.get_user_by_email(second) == original


def test_duplicate_user_id_is_refused(store: Store) -> None:
    store.create_user(f.user("a@example.com", id="same"))
    with pytest.raises(DuplicateId):
        store.create_user(f.user("b@example.com", id="same"))
    assert store.get_user_by_email("b@example.com") is None


def test_existing_user_ids(store: Store) -> None:
    ana, bea = f.user("ana@example.com"), f.user("bea@example.com")
    store.create_user(ana)
    store.create_user(bea)
    assert store.existing_user_ids([ana.id, "nobody", bea.id]) == {ana.id, bea.id}
    assert store.existing_user_ids([]) == set()
    store.delete_user(ana.id)
    assert store.existing_user_ids([ana.id, bea.id]) == {bea.id}


def test_delete_user_frees_the_email(store: Store) -> None:
    ana = f.user("ana@example.com")
    store.create_user(ana)
    assert store.delete_user(ana.id) is True
    assert store.delete_user(ana.id) is False
    assert store.get_user(ana.id) is None
    again = f.user("ANA@example.com")
    store.create_user(again)
    assert store.get_user_by_email("ana@example.com") == again


def test_count_users_by_role(store: Store) -> None:
    for i in range(3):
        store.create_user(f.user(f"c{i}@example.com"))
    store.create_user(f.user("o@example.com", role="ORGANIZADOR"))
    store.create_user(f.user("admin@example.com", role="ADMIN"))
    assert store.count_users_by_role() == {"COMPRADOR": 3, "ORGANIZADOR": 1, "ADMIN": 1}


# -- events --------------------------------------------------------------------------------


def test_event_round_trip_with_categories(store: Store) -> None:
    concert = f.event(location="WiZink Center, Madrid")
    store.create_event(concert)
    got = store.get_event(concert.id)
    assert got == concert
    assert got is not None and got.categories[0].benefits == ["Meet & greet"]
    assert store.get_event("missing") is None


def test_duplicate_event_id_is_refused(store: Store) -> None:
    store.create_event(f.event(id="e1", name="first"))
    with pytest.raises(DuplicateId):
        store.create_event(f.event(id="e1", name="second"))
    got = store.get_event("e1")
    assert got is not None and got.name == "first"


def test_replace_event(store: Store) -> None:
    concert = f.event(id="e1")
    store.create_event(concert)
    concert.name = "Concierto (nueva fecha)"
    concert.date += f.DAY
    concert.location = "Sevilla"
    concert.categories.append(Category(id="pit", name="Pista", price=60.0, total=50))
    concert.state = "closed"
    assert store.replace_event(concert) is True
    assert store.get_event("e1") == concert
    # The search columns follow the document.
    assert store.list_events(1, 10, location="sevilla")[1] == 1
    assert store.list_events(1, 10, location="madrid")[1] == 0
    assert store.replace_event(f.event(id="ghost")) is False
    assert store.get_event("ghost") is None


def test_delete_event(store: Store) -> None:
    store.create_event(f.event(id="e1"))
    store.create_event(f.event(id="e2"))
    assert store.delete_event("e1") is True
    assert store.delete_event("e1") is False
    assert store.get_event("e1") is None
    assert store.count_events() == 1
    assert [e.id for e in store.all_events()] == ["e2"]


def test_list_events_pages_by_date_then_id(store: Store) -> None:
    # Created out of order; two share a date (the id breaks the tie).
    dates = {"e5": 5, "e1": 1, "e3": 3, "e2b": 2, "e2a": 2, "e7": 7, "e6": 6}
    for event_id, day in dates.items():
        store.create_event(f.event(id=event_id, date=f.T0 + day * f.DAY))
    expected = ["e1", "e2a", "e2b", "e3", "e5", "e6", "e7"]

    pages = [store.list_events(page, 3) for page in (1, 2, 3, 4)]
    assert [[e.id for e in events] for events, _ in pages] == [
        expected[0:3],
        expected[3:6],
        expected[6:],
        [],
    ]
    assert {total for _, total in pages} == {7}
    assert [e.id for e in store.all_events()] == expected
    assert store.count_events() == 7


def test_list_events_by_date_range(store: Store) -> None:
    for day in range(5):
        store.create_event(f.event(id=f"d{day}", date=f.T0 + day * f.DAY + 3_600_000))
    day2 = f.T0 + 2 * f.DAY
    events, total = store.list_events(1, 10, date_from_ms=day2, date_to_ms=day2 + f.DAY)
    assert ([e.id for e in events], total) == (["d2"], 1)
    # from inclusive, to exclusive
    edge = f.T0 + 3 * f.DAY + 3_600_000
    events, total = store.list_events(1, 10, date_from_ms=edge)
    assert ([e.id for e in events], total) == (["d3", "d4"], 2)
    events, total = store.list_events(1, 10, date_to_ms=edge)
    assert ([e.id for e in events], total) == (["d0", "d1", "d2"], 3)


def test_list_events_by_location_substring_any_case(store: Store) -> None:
    store.create_event(f.event(id="a", location="Palacio de Deportes, Madrid"))
    store.create_event(f.event(id="b", location="Teatro Falla, Cádiz"))
    store.create_event(f.event(id="c", location="Sala (Norte) Bilbao"))
    store.create_event(f.event(id="d", location="abc"))

    def ids(location: str) -> list[str]:
        return [e.id for e in store.list_events(1, 10, location=location)[0]]

    assert ids("madrid") == ["a"]
    assert ids("MADRID") == ["a"]
    assert ids("CÁDIZ") == ["b"]
    assert ids("(norte)") == ["c"]  # regex metacharacters are literal
    assert ids("a.c") == []  # "." is not a wildcard
    assert ids("de") == ["a"]
    assert ids("Barcelona") == []


def test_list_events_by_ids_and_combined_filters(store: Store) -> None:
    for i in range(6):
        location = "Madrid" if i % 2 == 0 else "Valencia"
        store.create_event(f.event(id=f"e{i}", date=f.T0 + i * f.DAY, location=location))
    events, total = store.list_events(1, 10, ids=["e5", "e1", "zzz"])
    assert ([e.id for e in events], total) == (["e1", "e5"], 2)
    assert store.list_events(1, 10, ids=[]) == ([], 0)
    events, total = store.list_events(
        1, 1, location="madrid", date_from_ms=f.T0 + f.DAY, ids=["e0", "e2", "e4", "e3"]
    )
    assert ([e.id for e in events], total) == (["e2"], 2)


@pytest.mark.parametrize(("page", "limit"), [(0, 10), (1, 0), (-1, 5)])
def test_pages_start_at_one(store: Store, page: int, limit: int) -> None:
    with pytest.raises(ValueError, match="page and limit"):
        store.list_events(page, limit)
    with pytest.raises(ValueError, match="page and limit"):
        store.list_orders(page, limit)


# -- orders --------------------------------------------------------------------------------


def test_order_round_trip(store: Store) -> None:
    o = f.order(status="CONFIRMED", tickets=[("vip", 1, 120.0), ("gen", 3, 45.5)])
    assert store.upsert_orders([o]) == 1
    assert store.get_order(o.id) == o
    assert store.get_order("E1.missing") is None
    assert store.upsert_orders([]) == 0


def test_upsert_is_idempotent(store: Store) -> None:
    orders = [f.order(created_at=f.T0 + i) for i in range(5)]
    assert store.upsert_orders(orders) == 5
    store.upsert_orders(orders)  # a replayed batch
    store.upsert_orders(orders[2:4])
    assert store.list_orders(1, 100)[1] == 5
    assert [store.get_order(o.id) for o in orders] == orders


def test_version_never_regresses(store: Store) -> None:
    held = f.order(version=1)
    confirmed = f.at_version(held, 2, "CONFIRMED")
    assert store.upsert_orders([confirmed]) == 1
    assert store.upsert_orders([held]) == 0  # an old stream entry replayed
    assert store.get_order(held.id) == confirmed
    assert store.list_orders(1, 10, status="RESERVED") == ([], 0)
    other = f.order(version=1)
    newer = f.at_version(other, 3, "CANCELLED")
    assert store.upsert_orders([newer]) == 1
    assert store.get_order(other.id) == newer


def test_one_batch_with_several_versions_keeps_the_highest(store: Store) -> None:
    o1 = f.order(version=1)
    o2 = f.at_version(o1, 2, "CONFIRMED")
    other = f.order(version=1)
    assert store.upsert_orders([o2, other, o1]) == 2
    assert store.get_order(o1.id) == o2
    assert store.get_order(other.id) == other


def test_mixed_batch_writes_only_what_is_not_older(store: Store) -> None:
    a, b = f.order(version=1), f.order(version=1)
    store.upsert_orders([f.at_version(a, 5, "CONFIRMED")])
    written = store.upsert_orders([f.at_version(a, 4, "CANCELLED"), f.at_version(b, 2, "EXPIRED")])
    assert written == 1
    got_a, got_b = store.get_order(a.id), store.get_order(b.id)
    assert got_a is not None and (got_a.version, got_a.status) == (5, "CONFIRMED")
    assert got_b is not None and (got_b.version, got_b.status) == (2, "EXPIRED")


@pytest.mark.parametrize("final", ["EXPIRED", "CANCELLED", "RESERVED"])
@pytest.mark.parametrize("later", [0, 1, 5])
def test_a_stored_sale_is_never_overwritten_by_another_state(
    store: Store, final: str, later: int
) -> None:
    """After Redis lost its last second (a crash under everysec, a failover to a lagging
    replica) the hold it kept is released (or extended) at the sale's version or later."""
    held = f.order(event_id="E1", version=1, tickets=[("vip", 2, 150.0)])
    sale = f.at_version(held, 2, "CONFIRMED")
    store.upsert_orders([sale])
    assert store.upsert_orders([f.at_version(held, 2 + later, final)]) == 0
    assert store.get_order(held.id) == sale
    # nor inside one batch, in either order
    assert store.upsert_orders([sale, f.at_version(held, 3 + later, final)]) == 1
    assert store.upsert_orders([f.at_version(held, 3 + later, final), sale]) == 1
    assert store.get_order(held.id) == sale
    assert store.sold_counts("E1") == {"vip": 2}
    assert store.event_sales("E1") == {"vip": CategorySales(sold=2, revenue=300.0)}
    assert store.list_orders(1, 10, status=final) == ([], 0)


def test_a_sale_replaces_a_released_copy_at_its_version_or_later(store: Store) -> None:
    held = f.order(version=1)
    store.upsert_orders([f.at_version(held, 2, "EXPIRED")])
    sale = f.at_version(held, 2, "CONFIRMED")
    assert store.upsert_orders([sale]) == 1
    assert store.get_order(held.id) == sale
    again = f.at_version(sale, 3, "CONFIRMED")  # a later copy of the sale
    assert store.upsert_orders([again]) == 1
    assert store.get_order(held.id) == again


def test_final_states_at_the_same_version_keep_the_first(store: Store) -> None:
    held = f.order(version=1)
    expired = f.at_version(held, 2, "EXPIRED")
    store.upsert_orders([expired])
    assert store.upsert_orders([f.at_version(held, 2, "CANCELLED")]) == 0
    assert store.get_order(held.id) == expired
    assert store.upsert_orders([expired]) == 1  # a replay of the same state
    cancelled = f.at_version(held, 3, "CANCELLED")
    assert store.upsert_orders([cancelled]) == 1  # a later version still wins
    assert store.get_order(held.id) == cancelled


def test_get_orders_reads_many_ids_at_once(store: Store) -> None:
    orders = [f.order(created_at=f.T0 + i) for i in range(5)]
    store.upsert_orders(orders)
    wanted = [orders[0].id, orders[3].id, "E1.missing"]
    assert sorted(store.get_orders(wanted), key=lambda o: o.id) == sorted(
        [orders[0], orders[3]], key=lambda o: o.id
    )
    assert store.get_orders([]) == []


def test_existing_order_ids(store: Store) -> None:
    orders = [f.order(created_at=f.T0 + i) for i in range(3)]
    store.upsert_orders(orders)
    wanted = [orders[0].id, "E1.missing", orders[2].id, "not-an-order-id"]
    assert store.existing_order_ids(wanted) == {orders[0].id, orders[2].id}
    assert store.existing_order_ids([]) == set()
    many = [f"E9.{i:016x}" for i in range(600)]  # none stored; longer than any page
    assert store.existing_order_ids([*many, orders[1].id]) == {orders[1].id}


def test_listings_and_figures_can_leave_orders_out(store: Store) -> None:
    a = f.order(event_id="E1", status="CONFIRMED", created_at=f.T0 + 1, tickets=[("vip", 1, 150.0)])
    b = f.order(event_id="E1", status="CONFIRMED", created_at=f.T0 + 2, tickets=[("vip", 2, 150.0)])
    c = f.order(event_id="E1", status="RESERVED", created_at=f.T0 + 3)
    store.upsert_orders([a, b, c])
    assert store.list_orders(1, 10, event_id="E1", exclude_ids=[b.id, "E1.nope"]) == ([c, a], 2)
    assert store.list_orders(1, 10, status="CONFIRMED", exclude_ids=[a.id]) == ([b], 1)
    assert store.list_orders(1, 10, exclude_ids=[]) == ([c, b, a], 3)
    assert store.event_sales("E1", exclude_ids=[a.id]) == {
        "vip": CategorySales(sold=2, revenue=300.0)
    }
    stats = store.order_stats(exclude_ids=[b.id, c.id])
    assert stats == OrderStats(by_status={"CONFIRMED": 1}, tickets_sold=1, revenue=150.0)


def test_revenue_is_what_buyers_paid_not_todays_price(store: Store) -> None:
    """Sales and stats add the unit prices stored in the confirmed orders."""
    store.create_event(f.event(id="E1"))
    store.upsert_orders(
        [
            f.order(event_id="E1", status="CONFIRMED", tickets=[("vip", 1, 150.0)]),
            f.order(event_id="E1", status="CONFIRMED", tickets=[("vip", 2, 99.99)]),
        ]
    )
    event = store.get_event("E1")
    assert event is not None
    event.categories[0].price = 1000.0
    store.replace_event(event)
    assert store.event_sales("E1") == {"vip": CategorySales(sold=3, revenue=349.98)}
    assert store.order_stats().revenue == 349.98


def test_user_orders_newest_first_with_totals(store: Store) -> None:
    mine = [f.order(user_id="me", created_at=f.T0 + i * 1000) for i in range(5)]
    tie = [f.order(user_id="me", id=f"E1.{x}", created_at=f.T0 + 9000) for x in ("aa", "bb")]
    theirs = [f.order(user_id="them", created_at=f.T0 + 50_000)]
    store.upsert_orders([*mine, *tie, *theirs])
    expected = ["E1.bb", "E1.aa", *[o.id for o in reversed(mine)]]

    first, total = store.list_user_orders("me", 1, 4)
    second, total2 = store.list_user_orders("me", 2, 4)
    assert [o.id for o in first] == expected[:4]
    assert [o.id for o in second] == expected[4:]
    assert total == total2 == 7
    assert store.list_user_orders("me", 3, 4) == ([], 7)
    assert store.list_user_orders("nobody", 1, 4) == ([], 0)


def test_user_orders_with_rows_before_the_page_and_left_out(store: Store) -> None:
    mine = [f.order(user_id="me", created_at=f.T0 + i * 1000) for i in range(10)]
    theirs = [f.order(user_id="them", created_at=f.T0 + 500 + i * 1000) for i in range(10)]
    store.upsert_orders([*mine, *theirs])
    ids = [o.id for o in reversed(mine)]  # newest first

    def page(page: int, limit: int, **kw: Any) -> tuple[list[str], int]:
        rows, total = store.list_user_orders("me", page, limit, **kw)
        return [o.id for o in rows], total

    assert page(3, 3, before=2) == (ids[4:9], 10)  # rows 6-8, with rows 4 and 5 before
    assert page(2, 3, before=5) == (ids[:6], 10)  # fewer before near the top
    assert page(1, 3, before=4) == (ids[:3], 10)
    assert page(4, 3, before=1) == (ids[8:], 10)  # the end of the listing
    assert page(5, 3, before=1) == ([], 10)
    assert page(2, 3, before=0) == page(2, 3) == (ids[3:6], 10)
    left_out = [ids[0], ids[4], theirs[0].id, "E1.missing"]
    assert page(1, 4, exclude_ids=left_out) == ([ids[1], ids[2], ids[3], ids[5]], 8)
    assert page(2, 3, before=2, exclude_ids=left_out) == (
        [ids[2], ids[3], ids[5], ids[6], ids[7]],
        8,
    )
    assert page(1, 4, exclude_ids=[]) == (ids[:4], 10)
    with pytest.raises(ValueError):
        store.list_user_orders("me", 1, 3, before=-1)


def test_list_orders_filters_and_pages(store: Store) -> None:
    orders = []
    for i in range(12):
        status = ("RESERVED", "CONFIRMED", "EXPIRED", "CANCELLED")[i % 4]
        event_id = "E1" if i < 8 else "E2"
        orders.append(f.order(event_id=event_id, status=status, created_at=f.T0 + i))
    store.upsert_orders(orders)
    newest_first = [o.id for o in reversed(orders)]

    everything, total = store.list_orders(1, 5)
    assert ([o.id for o in everything], total) == (newest_first[:5], 12)
    assert [o.id for o in store.list_orders(3, 5)[0]] == newest_first[10:]

    confirmed, total = store.list_orders(1, 10, status="CONFIRMED")
    assert total == 3
    assert [o.id for o in confirmed] == [o.id for o in reversed(orders) if o.status == "CONFIRMED"]

    e2, total = store.list_orders(1, 10, event_id="E2")
    assert total == 4 and {o.event_id for o in e2} == {"E2"}

    both, total = store.list_orders(1, 10, status="CONFIRMED", event_id="E1")
    assert ([o.id for o in both], total) == ([orders[5].id, orders[1].id], 2)
    assert store.list_orders(1, 10, status="CONFIRMED", event_id="E9") == ([], 0)


def test_listings_follow_state_changes(store: Store) -> None:
    held = f.order(version=1)
    store.upsert_orders([held])
    assert store.list_orders(1, 10, status="RESERVED")[1] == 1
    store.upsert_orders([f.at_version(held, 2, "EXPIRED")])
    assert store.list_orders(1, 10, status="RESERVED")[1] == 0
    assert [o.id for o in store.list_orders(1, 10, status="EXPIRED")[0]] == [held.id]


def test_order_stats(store: Store) -> None:
    assert store.order_stats() == OrderStats(by_status={}, tickets_sold=0, revenue=0.0)
    store.upsert_orders(
        [
            f.order(status="CONFIRMED", tickets=[("a", 1, 10.1)]),
            f.order(status="CONFIRMED", tickets=[("a", 2, 10.1)]),
            f.order(status="CONFIRMED", tickets=[("b", 3, 0.1)]),
            f.order(status="RESERVED", tickets=[("a", 5, 100.0)]),
            f.order(status="CANCELLED", tickets=[("a", 7, 100.0)]),
            f.order(status="EXPIRED", tickets=[("b", 1, 100.0)]),
            f.order(status="EXPIRED", tickets=[("b", 1, 100.0)]),
        ]
    )
    stats = store.order_stats()
    assert stats.by_status == {"CONFIRMED": 3, "RESERVED": 1, "CANCELLED": 1, "EXPIRED": 2}
    assert stats.tickets_sold == 6
    assert stats.revenue == 30.6  # 10.1 + 20.2 + 0.3, rounded to cents


def test_event_sales_and_sold_counts(store: Store) -> None:
    store.upsert_orders(
        [
            f.order(
                event_id="E1", status="CONFIRMED", tickets=[("vip", 2, 120.0), ("gen", 1, 45.5)]
            ),
            f.order(event_id="E1", status="CONFIRMED", tickets=[("gen", 3, 45.5)]),
            f.order(event_id="E1", status="RESERVED", tickets=[("vip", 4, 120.0)]),
            f.order(event_id="E1", status="CANCELLED", tickets=[("gen", 9, 45.5)]),
            f.order(event_id="E2", status="CONFIRMED", tickets=[("vip", 8, 1.0)]),
        ]
    )
    assert store.event_sales("E1") == {
        "vip": CategorySales(sold=2, revenue=240.0),
        "gen": CategorySales(sold=4, revenue=182.0),
    }
    assert store.sold_counts("E1") == {"vip": 2, "gen": 4}
    assert store.sold_counts("E2") == {"vip": 8}
    assert store.event_sales("E3") == {}
    assert store.sold_counts("E3") == {}


def test_sold_counts_follow_versions(store: Store) -> None:
    held = f.order(event_id="E1", tickets=[("gen", 2, 10.0)])
    store.upsert_orders([held])
    assert store.sold_counts("E1") == {}
    store.upsert_orders([f.at_version(held, 2, "CONFIRMED")])
    assert store.sold_counts("E1") == {"gen": 2}
    store.upsert_orders([held])  # replay of the hold
    assert store.sold_counts("E1") == {"gen": 2}


# -- durability ----------------------------------------------------------------------------


def test_data_survives_close_and_reopen(backend: Backend) -> None:
    first = backend.open()
    ana = f.user("ana@example.com")
    concert = f.event(id="e1")
    held = f.order(event_id="e1", user_id=ana.id)
    first.create_user(ana)
    first.create_event(concert)
    first.upsert_orders([held, f.order(event_id="e1", status="CONFIRMED")])
    first.upsert_orders([f.at_version(held, 2, "CONFIRMED")])
    first.close()

    again = backend.open()
    assert again.get_user_by_email("ANA@example.com") == ana
    assert again.get_event("e1") == concert
    got = again.get_order(held.id)
    assert got is not None and (got.version, got.status) == (2, "CONFIRMED")
    assert again.order_stats().by_status == {"CONFIRMED": 2}
    # Unique indexes are still enforced after the reopen.
    with pytest.raises(DuplicateEmail):
        again.create_user(f.user("Ana@Example.com"))
    # And writes still work.
    assert again.upsert_orders([f.at_version(held, 1, "RESERVED")]) == 0


def test_errors_are_store_errors() -> None:
    assert issubclass(DuplicateEmail, StoreError)
    assert issubclass(DuplicateId, StoreError)
