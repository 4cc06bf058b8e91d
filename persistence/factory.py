"""Picking the store adapter from the configuration: :func:`open_store`.

Kept apart from :mod:`persistence.store` (the port) so the port imports no adapter and
the adapters can import the port: the adapters are imported here, lazily, so pymongo is
loaded only when MongoDB is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from persistence.store import SQLITE_FILENAME, Store


def open_store(
    mongodb_uri: str | None,
    data_dir: Path,
    *,
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> Store:
    """The MongoDB adapter when a URI is configured, else the embedded SQLite store in
    ``data_dir/onsale.db``."""
    if mongodb_uri:
        from persistence.mongo import MongoStore

        return MongoStore(mongodb_uri)
    from persistence.sqlite import SQLiteStore

    return SQLiteStore(data_dir / SQLITE_FILENAME, synchronous=sqlite_synchronous)
