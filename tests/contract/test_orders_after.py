"""``Store.orders_after``: keyset pages (the CSV exports) on every adapter."""

from __future__ import annotations

from persistence.store import Store
from tests.contract import factories as f


def _all_pages(store: Store, size: int, **filters: str) -> list[str]:
    seen: list[str] = []
    after: tuple[int, str] | None = None
    while True:
        page = store.orders_after(after, size, **filters)  # type: ignore[arg-type]
        if not page:
            return seen
        seen += [o.id for o in page]
        after = (page[-1].created_at, page[-1].id)


def test_keyset_pages_cover_every_order_once_newest_first(store: Store) -> None:
    orders = [
        f.order(event_id="E1" if i % 2 else "E2", created_at=f.T0 + i // 3, status=s)
        for i, s in zip(
            range(20), ["RESERVED", "CONFIRMED", "CANCELLED", "EXPIRED"] * 5, strict=True
        )
    ]
    store.upsert_orders(orders)
    expected = [o.id for o in sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)]
    for size in (1, 3, 7, 100):
        assert _all_pages(store, size) == expected
    e1 = [
        o.id
        for o in sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)
        if o.event_id == "E1"
    ]
    assert _all_pages(store, 4, event_id="E1") == e1
    confirmed_e1 = [i for i in e1 if next(o for o in orders if o.id == i).status == "CONFIRMED"]
    assert _all_pages(store, 2, event_id="E1", status="CONFIRMED") == confirmed_e1
    assert store.orders_after(None, 10, event_id="nope") == []
