"""The webhook store contract: every :class:`persistence.webhooks.WebhookStore` adapter
(SQLite, and MongoDB on mongomock or on ``MONGODB_URI``) behaves the same."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.errors import DuplicateId
from persistence.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    Attempt,
    Delivery,
    WebhookEndpoint,
    WebhookStore,
    seq_of,
)
from persistence.webhooks_mongo import MongoWebhookStore
from persistence.webhooks_sqlite import SQLiteWebhookStore

MONGODB_URI = os.environ.get("MONGODB_URI", "")


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WebhookStore]:
    if request.param == "sqlite":
        sqlite_store = SQLiteWebhookStore(tmp_path / "webhooks.db")
        yield sqlite_store
        sqlite_store.close()
        return
    if MONGODB_URI:
        import pymongo

        database = f"onsale_test_hooks_{secrets.token_hex(4)}"
        store = MongoWebhookStore(MONGODB_URI, database=database)
        yield store
        store.close()
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(MONGODB_URI)
        client.drop_database(database)
        client.close()
        return
    import mongomock

    mock = mongomock.MongoClient()
    store = MongoWebhookStore(client=mock, database="onsale_test")
    yield store
    mock.close()


def endpoint(eid: str = "ep1", owner: str = "u1", created: int = 1000) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=eid,
        owner_id=owner,
        url="https://example.com/hook",
        types=["order.created", "order.confirmed"],
        event_id=None,
        secret="whsec_" + "A" * 32,
        created_at=created,
    )


def delivery(did: str, subject: str, stream_id: str, ep: str = "ep1", due: int = 0) -> Delivery:
    return Delivery(
        id=did,
        endpoint_id=ep,
        type="order.created",
        subject=subject,
        seq=seq_of(stream_id),
        body='{"type":"order.created"}',
        created_at=1000,
        next_at=due,
    )


def test_endpoints_crud_and_listing(hooks: WebhookStore) -> None:
    hooks.create_endpoint(endpoint("ep1", "u1", 1000))
    hooks.create_endpoint(endpoint("ep2", "u2", 2000))
    hooks.create_endpoint(endpoint("ep3", "u1", 3000))
    with pytest.raises(DuplicateId):
        hooks.create_endpoint(endpoint("ep1"))
    got = hooks.get_endpoint("ep1")
    assert got is not None and got.types == ["order.created", "order.confirmed"]
    assert got.secret.startswith("whsec_")
    mine, total = hooks.list_endpoints(1, 10, owner_id="u1")
    assert [e.id for e in mine] == ["ep3", "ep1"] and total == 2
    every, total = hooks.list_endpoints(1, 2)
    assert [e.id for e in every] == ["ep3", "ep2"] and total == 3
    assert {e.id for e in hooks.active_endpoints()} == {"ep1", "ep2", "ep3"}
    hooks.add_deliveries([delivery("d1", "o1", "5-0", ep="ep2")])
    assert hooks.delete_endpoint("ep2") is True
    assert hooks.delete_endpoint("ep2") is False
    assert hooks.get_endpoint("ep2") is None
    assert hooks.get_delivery("d1") is None


def test_add_is_idempotent_and_queue_is_per_subject_in_order(hooks: WebhookStore) -> None:
    hooks.create_endpoint(endpoint())
    batch = [
        delivery("a2", "orderA", "20-0"),
        delivery("a1", "orderA", "10-0"),
        delivery("b1", "orderB", "15-0"),
    ]
    assert hooks.add_deliveries(batch) == 3
    assert hooks.add_deliveries(batch) == 0  # a replayed log entry adds nothing
    due = hooks.due_deliveries(now_ms=100, limit=10)
    assert sorted(d.id for d in due) == ["a1", "b1"]  # a2 waits behind a1
    # a1 retried later: a2 still waits (a confirm never goes before its hold)
    hooks.record_attempt(
        "a1", Attempt(status=PENDING, next_at=500, code=500, latency_ms=3, error=None, at=100)
    )
    assert sorted(d.id for d in hooks.due_deliveries(now_ms=100, limit=10)) == ["b1"]
    hooks.record_attempt(
        "a1", Attempt(status=DELIVERED, next_at=500, code=200, latency_ms=4, error=None, at=600)
    )
    assert sorted(d.id for d in hooks.due_deliveries(now_ms=600, limit=10)) == ["a2", "b1"]
    a1 = hooks.get_delivery("a1")
    assert a1 is not None
    assert (a1.status, a1.attempts, a1.last_code, a1.latency_ms) == (DELIVERED, 2, 200, 4)
    assert a1.finished_at == 600


def test_claim_is_exclusive(hooks: WebhookStore) -> None:
    hooks.create_endpoint(endpoint())
    hooks.add_deliveries([delivery("d1", "o1", "1-0", due=50)])
    assert hooks.claim_delivery("d1", 50, 10_000) is True
    assert hooks.claim_delivery("d1", 50, 10_000) is False  # another dispatcher lost
    assert hooks.due_deliveries(now_ms=9_999, limit=10) == []
    assert [d.id for d in hooks.due_deliveries(now_ms=10_000, limit=10)] == ["d1"]  # lease over
    hooks.add_deliveries([delivery("d2", "o2", "2-0", due=60), delivery("d3", "o3", "3-0", due=70)])
    assert hooks.claim_deliveries([("d2", 60), ("d3", 1), ("d1", 10_000)], 20_000) == ["d2", "d1"]
    assert hooks.claim_deliveries([("d2", 60)], 30_000) == []


def test_endpoint_is_disabled_after_failures_over_time(hooks: WebhookStore) -> None:
    hooks.create_endpoint(endpoint())
    hooks.add_deliveries([delivery("d1", "o1", "1-0")])
    rules = {"disable_after_failures": 3, "disable_after_ms": 1_000}
    assert hooks.record_endpoint_result("ep1", False, 100, **rules) is False
    assert hooks.record_endpoint_result("ep1", True, 200, **rules) is False  # reset
    for t in (300, 400, 500):
        assert hooks.record_endpoint_result("ep1", False, t, **rules) is False  # too soon
    assert hooks.record_endpoint_result("ep1", False, 1_300, **rules) is True
    ep = hooks.get_endpoint("ep1")
    assert ep is not None and ep.active is False
    assert ep.disabled_reason and "4 consecutive" in ep.disabled_reason
    assert hooks.active_endpoints() == []
    d1 = hooks.get_delivery("d1")
    assert d1 is not None and d1.status == FAILED
    assert hooks.due_deliveries(now_ms=10**12, limit=10) == []


def test_deliveries_listing_newest_first(hooks: WebhookStore) -> None:
    hooks.create_endpoint(endpoint())
    items = []
    for i in range(5):
        d = delivery(f"d{i}", f"o{i}", f"{i + 1}-0")
        d.created_at = 1000 + i
        items.append(d)
    hooks.add_deliveries(items)
    page, total = hooks.list_deliveries("ep1", 1, 2)
    assert total == 5 and [d.id for d in page] == ["d4", "d3"]
    page, _ = hooks.list_deliveries("ep1", 3, 2)
    assert [d.id for d in page] == ["d0"]
    assert hooks.list_deliveries("nope", 1, 10) == ([], 0)
