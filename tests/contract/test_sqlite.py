"""What the embedded adapter promises beyond the contract: file, WAL, indexes, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from persistence.errors import StoreError, StoreUnavailable
from persistence.factory import open_store
from persistence.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.contract import factories as f


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "onsale.db"


def _pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def test_open_store_without_mongodb_uri_is_the_embedded_file(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "var")
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "var" / "onsale.db"
        store.create_user(f.user("ana@example.com"))
        assert (tmp_path / "var" / "onsale.db").is_file()
    finally:
        store.close()


def test_wal_and_synchronous_modes(db_path: Path) -> None:
    normal = SQLiteStore(db_path)
    conn = normal._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    normal.close()
    assert _pragma(db_path, "journal_mode") == "wal"  # persistent in the file
    assert _pragma(db_path, "user_version") == SCHEMA_VERSION

    full = SQLiteStore(db_path, synchronous="FULL")
    assert full._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    full.close()
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(db_path, synchronous="OFF")  # type: ignore[arg-type]


def test_indexes_exist_and_serve_the_listings(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    conn = store._conn()
    indexes = {
        name: sql
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
    }
    assert "UNIQUE" in indexes["users_email_key"]
    for name in ("orders_user", "orders_status", "orders_event", "events_date"):
        assert name in indexes

    def plan(sql: str, *args: object) -> str:
        return " ".join(str(row[-1]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))

    assert "orders_user" in plan(
        "SELECT doc FROM orders WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT 5", "u"
    )
    assert "orders_status" in plan(
        "SELECT doc FROM orders WHERE status = ? ORDER BY created_at DESC, id DESC LIMIT 5", "X"
    )
    assert "users_email_key" in plan("SELECT doc FROM users WHERE email_key = ?", "a@b")
    # A buyer's order list: the page without the orders overlaid, and which recent orders
    # are stored, from the primary key alone (no document read).
    assert "orders_user" in plan(
        "SELECT doc FROM orders WHERE user_id = ? AND id NOT IN (SELECT value FROM json_each(?)) "
        "ORDER BY created_at DESC, id DESC LIMIT 5 OFFSET 3",
        "u",
        "[]",
    )
    assert "COVERING INDEX sqlite_autoindex_orders_1" in plan(
        "SELECT id FROM orders WHERE id IN (SELECT value FROM json_each(?))", "[]"
    )
    store.close()


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        SQLiteStore(db_path)


def test_a_locked_database_is_unavailable_not_an_error(db_path: Path) -> None:
    store = SQLiteStore(db_path, busy_timeout_s=0.05)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable):
            store.upsert_orders([f.order()])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.upsert_orders([f.order()]) == 1  # usable again
    store.close()


def test_closed_store_refuses_calls(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_order("E1.x")


def test_concurrent_writers_from_threads_and_processes_lose_nothing(db_path: Path) -> None:
    """Eight threads over two store instances (as the API and the writer would share the
    file), each writing batches and re-reading: every order lands, no error escapes."""
    stores = [SQLiteStore(db_path), SQLiteStore(db_path)]
    errors: list[BaseException] = []
    per_thread, batch = 10, 50

    def work(n: int) -> None:
        store = stores[n % 2]
        try:
            for b in range(per_thread):
                orders = [
                    f.order(id=f"E{n}.{b:03d}{i:03d}", event_id=f"E{n}", created_at=f.T0 + i)
                    for i in range(batch)
                ]
                assert store.upsert_orders(orders) == batch
                assert store.list_orders(1, 1, event_id=f"E{n}")[1] == (b + 1) * batch
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert stores[0].list_orders(1, 1)[1] == 8 * per_thread * batch
    for s in stores:
        s.close()


_OPENER = """
import sys, time
from pathlib import Path
from persistence.sqlite import SQLiteStore
start = float(sys.argv[2])
while time.time() < start:
    pass
store = SQLiteStore(Path(sys.argv[1]))
store.ping()
store.close()
print("ok")
"""


def test_workers_opening_a_new_file_together_all_start(tmp_path: Path) -> None:
    """``onsale serve --workers N`` on a fresh DATA_DIR: every worker opens the new file at
    the same moment and switches it to WAL. SQLite told the losers "database is locked" at
    once (no busy wait), and a worker failed to start (seen in a fresh-clone CI run)."""
    import subprocess
    import sys
    import time

    from tests.integration.conftest import REPO

    for round_ in range(3):
        path = tmp_path / f"race{round_}" / "onsale.db"
        start = time.time() + 1.5
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(path), str(start)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and out.strip() == "ok", err
        assert _pragma(path, "journal_mode") == "wal"
