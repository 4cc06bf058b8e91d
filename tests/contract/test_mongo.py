"""What the MongoDB adapter promises beyond the contract: durability options, indexes,
version races, error mapping. Runs on mongomock, or on MONGODB_URI when set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pymongo.write_concern import WriteConcern

from engine.redis_server import free_port
from persistence.errors import StoreError, StoreUnavailable
from persistence.factory import open_store
from persistence.mongo import MongoStore, bulk_outcome
from tests.contract import factories as f
from tests.contract.conftest import Backend, _mongo_backend


@pytest.fixture
def mongo_backend() -> Any:
    yield from _mongo_backend()


@pytest.fixture
def mongo(mongo_backend: Backend) -> MongoStore:
    store = mongo_backend.open()
    assert isinstance(store, MongoStore)
    return store


@pytest.mark.mongo
def test_collections_write_majority_journaled_and_read_majority(mongo: MongoStore) -> None:
    for collection in (mongo._users, mongo._events, mongo._orders):
        concern = collection.write_concern
        assert concern.document["w"] == "majority"
        assert concern.document["j"] is True
        assert concern != WriteConcern()
        assert collection.read_concern.level == "majority"


@pytest.mark.mongo
def test_indexes_are_created_at_start_up(mongo: MongoStore) -> None:
    users = mongo._users.index_information()
    assert users["email_unique"]["unique"] is True
    assert users["email_unique"]["key"] == [("emailLower", 1)]
    orders = mongo._orders.index_information()
    assert orders["user_newest"]["key"] == [("usuarioId", 1), ("creadoEn", -1), ("_id", -1)]
    assert orders["status_newest"]["key"][0] == ("estado", 1)
    assert orders["event_newest"]["key"][0] == ("eventoId", 1)
    assert mongo._events.index_information()["date"]["key"] == [("fecha", 1), ("_id", 1)]


@pytest.mark.mongo
def test_documents_use_our_id_and_the_contract_names(mongo: MongoStore) -> None:
    o = f.order(status="CONFIRMED")
    mongo.upsert_orders([o])
    doc = mongo._orders.find_one({"_id": o.id})
    assert doc is not None
    assert doc["estado"] == "CONFIRMED" and doc["eventoId"] == "E1" and doc["v"] == 1
    assert "id" not in doc
    mongo.create_user(f.user("Ana@Example.com", id="u1"))
    user = mongo._users.find_one({"_id": "u1"})
    assert user is not None and user["emailLower"] == "ana@example.com"
    assert user["email"] == "Ana@Example.com"


@pytest.mark.mongo
def test_an_upsert_that_lost_an_insert_race_is_retried(
    mongo: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers upsert a new order at once: both miss the version filter, one insert
    wins with the OLDER version and the other gets E11000. The adapter must retry, not
    take E11000 for "a newer version is stored"."""
    held = f.order(version=1)
    confirmed = f.at_version(held, 2, "CONFIRMED")
    real = mongo._replace_versioned
    calls: list[list[str]] = []

    def racing(docs: list[dict[str, Any]]) -> tuple[int, list[int]]:
        calls.append([d["_id"] for d in docs])
        if len(calls) == 1:
            real([{**docs[0], "v": 1, "estado": "RESERVED"}])  # the other writer's insert
            return 0, [0]  # ... and our insert's E11000
        return real(docs)

    monkeypatch.setattr(mongo, "_replace_versioned", racing)
    assert mongo.upsert_orders([confirmed]) == 1
    assert calls == [[held.id], [held.id]]
    assert mongo.get_order(held.id) == confirmed


def test_bulk_outcome_duplicate_keys_mean_a_newer_version_is_stored() -> None:
    details = {
        "writeErrors": [
            {"index": 3, "code": 11000, "errmsg": "E11000 duplicate key error"},
            {"index": 7, "code": 11000, "errmsg": "E11000 duplicate key error"},
        ],
        "writeConcernErrors": [],
        "nInserted": 0,
        "nUpserted": 5,
        "nMatched": 2,
        "nModified": 2,
        "nRemoved": 0,
        "upserted": [],
    }
    assert bulk_outcome(details) == (7, [3, 7])


def test_bulk_outcome_other_errors_are_raised() -> None:
    with pytest.raises(StoreError, match="121"):
        bulk_outcome({"writeErrors": [{"index": 0, "code": 121, "errmsg": "validation"}]})
    with pytest.raises(StoreUnavailable, match="majority"):
        bulk_outcome(
            {
                "writeErrors": [],
                "writeConcernErrors": [{"code": 64, "errmsg": "waiting for majority timed out"}],
                "nMatched": 3,
            }
        )


def test_unreachable_server_is_unavailable() -> None:
    """A real MongoClient against a closed port: start-up survives, calls raise
    StoreUnavailable (the writer's cue to back off)."""
    uri = f"mongodb://127.0.0.1:{free_port()}/onsale"
    store = MongoStore(uri, server_selection_timeout_ms=100)
    try:
        assert store.database_name == "onsale"
        with pytest.raises(StoreUnavailable):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.upsert_orders([f.order()])
        with pytest.raises(StoreUnavailable):
            store.get_user("u1")
    finally:
        store.close()


def test_open_store_with_a_uri_is_the_mongo_adapter(tmp_path: Path) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/tickets?serverSelectionTimeoutMS=100"
    store = open_store(uri, tmp_path)
    try:
        assert isinstance(store, MongoStore)
        assert store.database_name == "tickets"
        assert list(tmp_path.iterdir()) == []  # no embedded file on the side
        # The URI's own timeout wins over the adapter's default (5 s).
        assert store._client.options.server_selection_timeout == 0.1
        assert store._client.options.retry_writes is True
    finally:
        store.close()


def test_a_uri_or_a_client_is_required() -> None:
    with pytest.raises(ValueError, match="URI or a client"):
        MongoStore()
