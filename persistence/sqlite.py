"""The embedded store: one SQLite file (``DATA_DIR/onsale.db``), standard library only.

Durability and concurrency:

* WAL journal, so readers never block the writer and a crash (even SIGKILL mid-write)
  leaves the last committed transaction intact.
* ``synchronous=NORMAL`` by default: a committed transaction survives a process crash;
  an OS crash or power loss may roll back the last few commits. ``synchronous=FULL``
  (``SQLiteStore(path, synchronous="FULL")``) fsyncs every commit and survives those too,
  at a throughput cost.
* One connection per thread (``threading.local``); writes are serialised by a lock in
  this process and by SQLite's busy timeout across processes (API and writer may share
  the file). Every write is one ``BEGIN IMMEDIATE`` transaction.

Queried fields are columns (with indexes); each row also keeps the full JSON document,
which is what reads return. Emails and locations are matched through a case-folded copy
computed in Python (SQLite's ``lower()`` only folds ASCII: "CÁDIZ" would not match).

This module holds the queries; the connections, transactions, error mapping and schema
are :mod:`persistence.sqlite_db`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from typing import Any

import msgspec

from engine.models import Order
from engine.vocabulary import OrderStatus
from persistence.errors import DuplicateEmail, DuplicateId, StoreError
from persistence.sqlite_db import SCHEMA_VERSION, SQLiteDatabase
from persistence.store import (
    CategorySales,
    Event,
    OrderStats,
    User,
    fold,
    latest_versions,
    money,
    page_offset,
    page_rows,
    ticket_count,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

log = logging.getLogger(__name__)

# An order's event, user and creation time never change (the id carries the event), so an
# update leaves them, and the indexes on them, alone. The WHERE is persistence.store's
# ``supersedes`` rule: a CONFIRMED wins over any other state whatever the versions; else
# a higher version, or the same version over a RESERVED or a replay of the same state.
_UPSERT_ORDER = """
INSERT INTO orders (id, event_id, user_id, status, created_at, version, quantity, total, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    status = excluded.status,
    version = excluded.version,
    quantity = excluded.quantity,
    total = excluded.total,
    doc = excluded.doc
WHERE CASE
    WHEN (orders.status = 'CONFIRMED') <> (excluded.status = 'CONFIRMED')
        THEN excluded.status = 'CONFIRMED'
    WHEN excluded.version <> orders.version
        THEN excluded.version > orders.version
    ELSE orders.status IN ('RESERVED', excluded.status)
END
"""

# ``id NOT IN`` one JSON array parameter (no limit on the number of placeholders).
_NOT_IN = "id NOT IN (SELECT value FROM json_each(?))"

_EVENT_SALES = """
SELECT json_extract(t.value, '$.categoriaId') AS category,
       SUM(json_extract(t.value, '$.cantidad')),
       SUM(json_extract(t.value, '$.cantidad') * json_extract(t.value, '$.precioUnitario'))
FROM orders AS o, json_each(o.doc, '$.tickets') AS t
WHERE o.event_id = ? AND o.status = ? {exclude}
GROUP BY category
"""

_user_decoder = msgspec.json.Decoder(User)
_event_decoder = msgspec.json.Decoder(Event)
_order_decoder = msgspec.json.Decoder(Order)
_encoder = msgspec.json.Encoder()


def _json(value: msgspec.Struct) -> str:
    return _encoder.encode(value).decode()


def _ids_json(ids: Collection[str]) -> str:
    return _encoder.encode(list(ids)).decode()


class SQLiteStore(SQLiteDatabase):
    """The embedded :class:`persistence.store.Store` adapter: the queries, on
    :class:`~persistence.sqlite_db.SQLiteDatabase`'s connections and transactions."""

    # -- users -----------------------------------------------------------------------------

    def create_user(self, user: User) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO users (id, email_key, role, doc) VALUES (?, ?, ?, ?)",
                    (user.id, fold(user.email), user.role, _json(user)),
                )
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, sqlite3.IntegrityError):
                if "email_key" in str(cause):
                    raise DuplicateEmail(user.email) from cause
                raise DuplicateId("user", user.id) from cause
            raise

    def get_user(self, user_id: str) -> User | None:
        return self._one("SELECT doc FROM users WHERE id = ?", (user_id,), _user_decoder)

    def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        if not user_ids:
            return set()
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?))",
                (_ids_json(user_ids),),
            ).fetchall()
        return {user_id for (user_id,) in rows}

    def get_user_by_email(self, email: str) -> User | None:
        return self._one("SELECT doc FROM users WHERE email_key = ?", (fold(email),), _user_decoder)

    def delete_user(self, user_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM users WHERE id = ?", (user_id,)).rowcount > 0

    def count_users_by_role(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute("SELECT role, COUNT(*) FROM users GROUP BY role").fetchall()
        return {role: int(n) for role, n in rows}

    # -- events ----------------------------------------------------------------------------

    def create_event(self, event: Event) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO events (id, date, location_key, doc) VALUES (?, ?, ?, ?)",
                    (event.id, event.date, fold(event.location), _json(event)),
                )
        except StoreError as e:
            if isinstance(e.__cause__, sqlite3.IntegrityError):
                raise DuplicateId("event", event.id) from e.__cause__
            raise

    def get_event(self, event_id: str) -> Event | None:
        return self._one("SELECT doc FROM events WHERE id = ?", (event_id,), _event_decoder)

    def replace_event(self, event: Event) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE events SET date = ?, location_key = ?, doc = ? WHERE id = ?",
                (event.date, fold(event.location), _json(event), event.id),
            )
            return cursor.rowcount > 0

    def delete_event(self, event_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM events WHERE id = ?", (event_id,)).rowcount > 0

    def list_events(
        self,
        page: int,
        limit: int,
        *,
        date_from_ms: int | None = None,
        date_to_ms: int | None = None,
        location: str | None = None,
        ids: Collection[str] | None = None,
    ) -> tuple[list[Event], int]:
        offset = page_offset(page, limit)
        where: list[str] = []
        params: list[Any] = []
        if date_from_ms is not None:
            where.append("date >= ?")
            params.append(date_from_ms)
        if date_to_ms is not None:
            where.append("date < ?")
            params.append(date_to_ms)
        if location:
            where.append("instr(location_key, ?) > 0")
            params.append(fold(location))
        if ids is not None:
            # One JSON parameter instead of one placeholder per id (no variable limit).
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(msgspec.json.encode(list(ids)).decode())
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM events {clause}", params).fetchone()[0]  # noqa: S608 - clause is built from constants
            rows = conn.execute(
                f"SELECT doc FROM events {clause} ORDER BY date, id LIMIT ? OFFSET ?",  # noqa: S608
                [*params, limit, offset],
            ).fetchall()
        return [_event_decoder.decode(doc) for (doc,) in rows], int(total)

    def all_events(self) -> list[Event]:
        with self._read() as conn:
            rows = conn.execute("SELECT doc FROM events ORDER BY date, id").fetchall()
        return [_event_decoder.decode(doc) for (doc,) in rows]

    def count_events(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- orders ----------------------------------------------------------------------------

    def upsert_orders(self, orders: list[Order]) -> int:
        rows = [
            (
                o.id,
                o.event_id,
                o.user_id,
                o.status,
                o.created_at,
                o.version,
                ticket_count(o),
                o.total,
                _json(o),
            )
            for o in latest_versions(orders)
        ]
        if not rows:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(_UPSERT_ORDER, rows)
            return conn.total_changes - before

    def get_order(self, order_id: str) -> Order | None:
        return self._one("SELECT doc FROM orders WHERE id = ?", (order_id,), _order_decoder)

    def get_orders(self, order_ids: Collection[str]) -> list[Order]:
        if not order_ids:
            return []
        with self._read() as conn:
            rows = conn.execute(
                "SELECT doc FROM orders WHERE id IN (SELECT value FROM json_each(?))",
                (_ids_json(order_ids),),
            ).fetchall()
        return [_order_decoder.decode(doc) for (doc,) in rows]

    def existing_order_ids(self, order_ids: Collection[str]) -> set[str]:
        if not order_ids:
            return set()
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM orders WHERE id IN (SELECT value FROM json_each(?))",
                (_ids_json(order_ids),),
            ).fetchall()
        return {order_id for (order_id,) in rows}

    def list_user_orders(
        self,
        user_id: str,
        page: int,
        limit: int,
        *,
        before: int = 0,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        where: list[str] = ["user_id = ?"]
        params: list[Any] = [user_id]
        if exclude_ids:
            where.append(_NOT_IN)
            params.append(_ids_json(exclude_ids))
        offset, count = page_rows(page, limit, before)
        return self._order_page(f"WHERE {' AND '.join(where)}", params, offset, count)

    def list_orders(
        self,
        page: int,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        where, params = _order_filters(status, event_id)
        if exclude_ids:
            where.append(_NOT_IN)
            params.append(_ids_json(exclude_ids))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._order_page(clause, params, page_offset(page, limit), limit)

    def _order_page(
        self, clause: str, params: list[Any], offset: int, limit: int
    ) -> tuple[list[Order], int]:
        with self._read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM orders {clause}", params).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT doc FROM orders {clause} "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [_order_decoder.decode(doc) for (doc,) in rows], int(total)

    def order_stats(self, *, exclude_ids: Collection[str] | None = None) -> OrderStats:
        excluded = [_ids_json(exclude_ids)] if exclude_ids else []
        where = f"WHERE {_NOT_IN}" if exclude_ids else ""
        also = f"AND {_NOT_IN}" if exclude_ids else ""
        with self._read() as conn:
            by_status = conn.execute(
                f"SELECT status, COUNT(*) FROM orders {where} GROUP BY status",  # noqa: S608
                excluded,
            )
            counts = {status: int(n) for status, n in by_status.fetchall()}
            sold, revenue = conn.execute(
                "SELECT COALESCE(SUM(quantity), 0), COALESCE(SUM(total), 0) "  # noqa: S608
                f"FROM orders WHERE status = ? {also}",
                [OrderStatus.CONFIRMED.value, *excluded],
            ).fetchone()
        return OrderStats(by_status=counts, tickets_sold=int(sold), revenue=money(revenue))

    def event_sales(
        self, event_id: str, *, exclude_ids: Collection[str] | None = None
    ) -> dict[str, CategorySales]:
        params: list[Any] = [event_id, OrderStatus.CONFIRMED.value]
        if exclude_ids:
            params.append(_ids_json(exclude_ids))
        sql = _EVENT_SALES.format(exclude=f"AND o.{_NOT_IN}" if exclude_ids else "")
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return {
            str(category): CategorySales(sold=int(sold), revenue=money(revenue))
            for category, sold, revenue in rows
        }

    def sold_counts(self, event_id: str) -> dict[str, int]:
        return {category: s.sold for category, s in self.event_sales(event_id).items()}

    def orders_after(
        self,
        after: tuple[int, str] | None,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
    ) -> list[Order]:
        where, params = _order_filters(status, event_id)
        if after is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(after)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT doc FROM orders {clause} "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [_order_decoder.decode(doc) for (doc,) in rows]


def _order_filters(status: str | None, event_id: str | None) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters of the order lists' two filters (state, event)."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if event_id is not None:
        where.append("event_id = ?")
        params.append(event_id)
    return where, params
