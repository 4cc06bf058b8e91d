"""The embedded store's database file: one connection per thread, the write lock and
the IMMEDIATE write and snapshot read transactions, SQLite's errors mapped to the store's
(a busy or locked file is :class:`StoreUnavailable`, "not now"), and the schema with its
migration (``PRAGMA user_version``). :class:`SQLiteDatabase` is the base of
:class:`persistence.sqlite.SQLiteStore`, which holds the queries."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from persistence.errors import StoreError, StoreUnavailable

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id          TEXT PRIMARY KEY,
    email_key   TEXT NOT NULL,
    role        TEXT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email_key);

CREATE TABLE IF NOT EXISTS events (
    id            TEXT PRIMARY KEY,
    date          INTEGER NOT NULL,
    location_key  TEXT NOT NULL,
    doc           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_date ON events (date, id);

CREATE TABLE IF NOT EXISTS orders (
    id          TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    quantity    INTEGER NOT NULL,
    total       REAL NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_event ON orders (event_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_created ON orders (created_at DESC, id DESC);
"""


# Messages of sqlite3.OperationalError that mean "not now" rather than "never".
_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "disk is full", "readonly")

T = TypeVar("T")


class SQLiteDatabase:
    """Connections, transactions and the schema of one SQLite file (see the module).

    A subclass with another file sets ``_schema`` (and ``_schema_version``: ``None`` to
    apply the schema without ``PRAGMA user_version``), ``_closed_message`` and the
    per-connection tuning (``_cached_statements``, ``_tuning_pragmas``)."""

    _schema: str = _SCHEMA
    _schema_version: int | None = SCHEMA_VERSION
    _closed_message = "the store is closed"
    _cached_statements = 64
    _tuning_pragmas: tuple[str, ...] = (
        "PRAGMA temp_store = MEMORY",
        "PRAGMA cache_size = -65536",  # up to 64 MiB of pages per connection
    )

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot create {self.path.parent}: {e}") from e
        self._migrate()

    # -- connections and transactions ----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        with self._errors():
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # only close() touches another thread's connection
                cached_statements=self._cached_statements,
            )
            _use_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            for pragma in self._tuning_pragmas:
                conn.execute(pragma)
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(self._closed_message)
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            if any(word in str(e).lower() for word in _TRANSIENT):
                raise StoreUnavailable(f"sqlite: {e}") from e
            raise StoreError(f"sqlite: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"sqlite: {e}") from e

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any error."""
        conn = self._conn()
        with self._write_lock, self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so a page and its total come from one snapshot."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            known = self._schema_version
            if known is not None:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > known:
                    raise StoreError(
                        f"{self.path} has schema version {version}; this onsale knows "
                        f"{known} (downgrade?)"
                    )
            for statement in self._schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if known is not None:
                conn.execute(f"PRAGMA user_version = {known}")

    def ping(self) -> None:
        with self._errors():
            self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Close every connection (call when no other thread is using the store)."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _one(self, sql: str, params: tuple[Any, ...], decoder: msgspec.json.Decoder[T]) -> T | None:
        with self._errors():
            row = self._conn().execute(sql, params).fetchone()
        return None if row is None else decoder.decode(row[0])


WAL_ATTEMPTS = 100


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (a property of the file, kept across connections).

    Several processes opening a new file at once (``onsale serve --workers N``) race to
    switch its journal mode, and SQLite answers the losers "database is locked" at once,
    without waiting on the busy timeout: a worker then failed to start. So the mode is read
    first (once WAL, nothing to do) and the switch is retried for up to ~5 s."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            transient = "locked" in str(e).lower() or "busy" in str(e).lower()
            if not transient or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05)
