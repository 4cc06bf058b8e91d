"""Fixtures of the store contract suite: one ``store`` per adapter.

``sqlite`` opens the embedded store in the test's temporary directory. ``mongo`` opens
the MongoDB adapter on ``mongomock`` or, when ``MONGODB_URI`` is set, on that real
deployment, in a database of its own (``onsale_test_<run>_<n>``) dropped after the test.
Every ``mongo`` case carries the ``mongo`` marker: ``MONGODB_URI=... pytest -m mongo``
runs exactly the suite against a real replica set.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from persistence.mongo import MongoStore
from persistence.sqlite import SQLiteStore
from persistence.store import Store

MONGODB_URI = os.environ.get("MONGODB_URI", "")
RUN_ID = secrets.token_hex(4)
_db_numbers = itertools.count(1)


@dataclass
class Backend:
    """Opens stores on one database (file, or MongoDB database) for a test."""

    name: str
    opener: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store = self.opener()
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def _sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    backend = Backend("sqlite", lambda: SQLiteStore(tmp_path / "store" / "onsale.db"))
    yield backend
    backend.close_all()


def _mongo_backend() -> Iterator[Backend]:
    if MONGODB_URI:
        import pymongo

        database = f"onsale_test_{RUN_ID}_{next(_db_numbers)}"
        backend = Backend("mongo", lambda: MongoStore(MONGODB_URI, database=database))
        yield backend
        backend.close_all()
        admin: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(MONGODB_URI)
        try:
            admin.drop_database(database)
        finally:
            admin.close()
        return
    import mongomock

    # One in-memory server per test; each "open" is a new adapter on the same data.
    client = mongomock.MongoClient()
    backend = Backend("mongo", lambda: MongoStore(client=client, database="onsale_test"))
    yield backend
    backend.close_all()
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield from _sqlite_backend(tmp_path)
    else:
        yield from _mongo_backend()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()
