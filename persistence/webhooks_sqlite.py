"""The embedded :class:`~persistence.webhooks.WebhookStore`: its own SQLite file
(``DATA_DIR/webhooks.db``), so the dispatcher's queue never contends with order writes for
``onsale.db``'s one writer.

Same discipline as :mod:`persistence.sqlite`: WAL, one connection per thread, every write
one ``BEGIN IMMEDIATE`` transaction. Queried fields are columns; each row keeps the full
document, which is what reads return.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from persistence.errors import DuplicateId, StoreError
from persistence.sqlite_db import SQLiteDatabase
from persistence.store import page_offset
from persistence.webhooks import (
    FAILED,
    PENDING,
    Attempt,
    Delivery,
    WebhookEndpoint,
    apply_attempt,
    disabled_reason,
    should_disable,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    active      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_owner ON endpoints (owner_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS endpoints_created ON endpoints (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS deliveries (
    id           TEXT PRIMARY KEY,
    endpoint_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    seq          TEXT NOT NULL,
    status       TEXT NOT NULL,
    next_at      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    doc          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS deliveries_queue
    ON deliveries (endpoint_id, subject, seq) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS deliveries_log ON deliveries (endpoint_id, created_at DESC, id DESC);
"""

_DUE = """
SELECT d.doc FROM deliveries AS d
JOIN endpoints AS e ON e.id = d.endpoint_id AND e.active = 1
WHERE d.status = 'PENDING' AND d.next_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM deliveries AS p
    WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject
      AND p.status = 'PENDING' AND p.seq < d.seq
  )
ORDER BY d.next_at
LIMIT ?
"""

_endpoint_decoder = msgspec.json.Decoder(WebhookEndpoint)
_delivery_decoder = msgspec.json.Decoder(Delivery)
_encoder = msgspec.json.Encoder()


def _json(value: msgspec.Struct) -> str:
    return _encoder.encode(value).decode()


class SQLiteWebhookStore(SQLiteDatabase):
    """Connections, transactions and error mapping from :class:`SQLiteDatabase`; this
    file's own schema, applied without a ``user_version``."""

    _schema = _SCHEMA
    _schema_version = None
    _closed_message = "the webhook store is closed"
    _cached_statements = 128  # sqlite3's default
    _tuning_pragmas = ()

    # -- endpoints -------------------------------------------------------------------------

    def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO endpoints (id, owner_id, active, created_at, doc) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        endpoint.id,
                        endpoint.owner_id,
                        int(endpoint.active),
                        endpoint.created_at,
                        _json(endpoint),
                    ),
                )
        except StoreError as e:
            if isinstance(e.__cause__, sqlite3.IntegrityError):
                raise DuplicateId("webhook", endpoint.id) from e
            raise

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._read() as conn:
            row = conn.execute("SELECT doc FROM endpoints WHERE id = ?", (endpoint_id,)).fetchone()
        return _endpoint_decoder.decode(row[0]) if row else None

    def list_endpoints(
        self, page: int, limit: int, *, owner_id: str | None = None
    ) -> tuple[list[WebhookEndpoint], int]:
        clause, params = ("WHERE owner_id = ?", [owner_id]) if owner_id is not None else ("", [])
        with self._read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM endpoints {clause}", params).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT doc FROM endpoints {clause} "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, page_offset(page, limit)],
            ).fetchall()
        return [_endpoint_decoder.decode(d) for (d,) in rows], int(total)

    def active_endpoints(self) -> list[WebhookEndpoint]:
        with self._read() as conn:
            rows = conn.execute("SELECT doc FROM endpoints WHERE active = 1").fetchall()
        return [_endpoint_decoder.decode(d) for (d,) in rows]

    def delete_endpoint(self, endpoint_id: str) -> bool:
        with self._write() as conn:
            gone = conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,)).rowcount
            conn.execute("DELETE FROM deliveries WHERE endpoint_id = ?", (endpoint_id,))
        return bool(gone)

    def record_endpoint_result(
        self,
        endpoint_id: str,
        ok: bool,
        now_ms: int,
        *,
        disable_after_failures: int,
        disable_after_ms: int,
    ) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT doc FROM endpoints WHERE id = ?", (endpoint_id,)).fetchone()
            if row is None:
                return False
            ep = _endpoint_decoder.decode(row[0])
            if ok:
                if ep.consecutive_failures == 0:
                    return False
                ep.consecutive_failures, ep.failing_since = 0, None
            else:
                ep.consecutive_failures += 1
                ep.failing_since = ep.failing_since or now_ms
            disable = not ok and should_disable(
                ep,
                now_ms,
                disable_after_failures=disable_after_failures,
                disable_after_ms=disable_after_ms,
            )
            if disable:
                ep.active = False
                ep.disabled_at = now_ms
                ep.disabled_reason = disabled_reason(ep)
                self._fail_pending(conn, endpoint_id, now_ms)
            conn.execute(
                "UPDATE endpoints SET active = ?, doc = ? WHERE id = ?",
                (int(ep.active), _json(ep), endpoint_id),
            )
        return disable

    @staticmethod
    def _fail_pending(conn: sqlite3.Connection, endpoint_id: str, now_ms: int) -> None:
        rows = conn.execute(
            "SELECT doc FROM deliveries WHERE endpoint_id = ? AND status = ?",
            (endpoint_id, PENDING),
        ).fetchall()
        for (doc,) in rows:
            d = _delivery_decoder.decode(doc)
            d.status, d.finished_at = FAILED, now_ms
            d.last_error = "endpoint disabled"
            conn.execute(
                "UPDATE deliveries SET status = ?, doc = ? WHERE id = ?", (FAILED, _json(d), d.id)
            )

    # -- deliveries ------------------------------------------------------------------------

    def add_deliveries(self, deliveries: list[Delivery]) -> int:
        if not deliveries:
            return 0
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO deliveries "
                "(id, endpoint_id, subject, seq, status, next_at, created_at, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.id,
                        d.endpoint_id,
                        d.subject,
                        d.seq,
                        d.status,
                        d.next_at,
                        d.created_at,
                        _json(d),
                    )
                    for d in deliveries
                ],
            )
            return conn.total_changes - before

    def due_deliveries(self, now_ms: int, limit: int) -> list[Delivery]:
        with self._read() as conn:
            rows = conn.execute(_DUE, (now_ms, limit)).fetchall()
        return [_delivery_decoder.decode(d) for (d,) in rows]

    @staticmethod
    def _claim(
        conn: sqlite3.Connection, delivery_id: str, expected_next_at: int, lease_until: int
    ) -> bool:
        """Lease one PENDING delivery still due at ``expected_next_at`` (in ``conn``'s
        write transaction); False when another worker got there first."""
        row = conn.execute(
            "SELECT doc FROM deliveries WHERE id = ? AND status = ? AND next_at = ?",
            (delivery_id, PENDING, expected_next_at),
        ).fetchone()
        if row is None:
            return False
        d = _delivery_decoder.decode(row[0])
        d.next_at = lease_until
        conn.execute(
            "UPDATE deliveries SET next_at = ?, doc = ? WHERE id = ?",
            (lease_until, _json(d), delivery_id),
        )
        return True

    def claim_delivery(self, delivery_id: str, expected_next_at: int, lease_until: int) -> bool:
        with self._write() as conn:
            return self._claim(conn, delivery_id, expected_next_at, lease_until)

    def claim_deliveries(self, claims: list[tuple[str, int]], lease_until: int) -> list[str]:
        with self._write() as conn:
            return [d for d, expected in claims if self._claim(conn, d, expected, lease_until)]

    def record_attempt(self, delivery_id: str, attempt: Attempt) -> None:
        with self._write() as conn:
            row = conn.execute("SELECT doc FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                return  # the endpoint was deleted meanwhile
            d = apply_attempt(_delivery_decoder.decode(row[0]), attempt)
            conn.execute(
                "UPDATE deliveries SET status = ?, next_at = ?, doc = ? WHERE id = ?",
                (d.status, d.next_at, _json(d), delivery_id),
            )

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._read() as conn:
            row = conn.execute("SELECT doc FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return _delivery_decoder.decode(row[0]) if row else None

    def list_deliveries(
        self, endpoint_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        params: list[Any] = [endpoint_id]
        with self._read() as conn:
            total = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE endpoint_id = ?", params
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT doc FROM deliveries WHERE endpoint_id = ? "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, limit, page_offset(page, limit)],
            ).fetchall()
        return [_delivery_decoder.decode(d) for (d,) in rows], int(total)
