"""The MongoDB adapter (pymongo, synchronous ``MongoClient``), for a replica set.

Collections ``users``, ``events`` and ``orders`` keep documents with the contract's field
names and ``_id`` = our id. Durability is explicit on every collection: write concern
``majority`` + journaled (with a timeout, so a degraded replica set surfaces as
:class:`StoreUnavailable` instead of hanging), read concern ``majority``, retryable writes.
This module holds the queries; the client, the collections, their indexes and the error
mapping are :mod:`persistence.mongo_db`.

Orders are written by version: ``ReplaceOne({_id, <the stored copy is superseded>}, doc,
upsert=True)`` (:func:`superseded_filter`, persistence.store's ``supersedes`` rule). When
the stored copy wins the filter misses, the upsert tries to insert a second document
with the same ``_id`` and the server answers E11000: for this adapter that is success (the
store already holds something newer), not an error.

Tests run this adapter against ``mongomock`` (MongoDB cannot be installed there) and,
with ``MONGODB_URI`` set, against a real replica set. The one place the stand-in lacks
a feature is marked "mongomock compatibility" below.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from engine.models import Order
from engine.vocabulary import OrderStatus
from persistence.errors import DuplicateEmail, DuplicateId, StoreError, StoreUnavailable
from persistence.mongo_db import (
    BY_DATE,
    EMAIL_KEY,
    LOCATION_KEY,
    NEWEST_FIRST,
    Doc,
    MongoDatabase,
    from_doc,
    to_doc,
)
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
)

__all__ = ["MongoStore", "bulk_outcome", "superseded_filter"]

DUPLICATE_KEY = 11000
_CONFIRMED = OrderStatus.CONFIRMED.value
_RESERVED = OrderStatus.RESERVED.value
_IN_CHUNK = 10_000  # ids per $in of get_orders and existing_order_ids


def bulk_outcome(details: Doc) -> tuple[int, list[int]]:
    """Read a ``BulkWriteError`` of a versioned upsert: (orders written, indexes of the ops
    that hit a duplicate key). Raises for anything that is not a duplicate key."""
    concern_errors = details.get("writeConcernErrors") or []
    if concern_errors:
        # Applied on the primary but not acknowledged by a majority: not durable yet.
        # Retrying is safe (versioned, idempotent).
        raise StoreUnavailable(f"mongodb write concern: {concern_errors[0].get('errmsg')}")
    duplicates: list[int] = []
    for error in details.get("writeErrors") or []:
        if error.get("code") != DUPLICATE_KEY:
            raise StoreError(f"mongodb write error {error.get('code')}: {error.get('errmsg')}")
        duplicates.append(int(error["index"]))
    written = int(details.get("nMatched", 0)) + int(details.get("nUpserted", 0))
    return written, duplicates


def superseded_filter(doc: Doc) -> Doc:
    """The filter matching a stored copy that ``doc`` (an order) replaces: the store's
    ``supersedes`` rule. A CONFIRMED replaces any other state, and a CONFIRMED of a
    version <= its own; anything else never a CONFIRMED, any lower version, and the same
    version only over a RESERVED or the same state."""
    version, status = doc["v"], doc["estado"]
    if status == _CONFIRMED:
        return {
            "_id": doc["_id"],
            "$or": [{"estado": {"$ne": _CONFIRMED}}, {"v": {"$lte": version}}],
        }
    return {
        "_id": doc["_id"],
        "estado": {"$ne": _CONFIRMED},
        "$or": [
            {"v": {"$lt": version}},
            {"v": version, "estado": {"$in": sorted({_RESERVED, status})}},
        ],
    }


def _excluding(query: Doc, exclude_ids: Collection[str] | None) -> Doc:
    if exclude_ids:
        query["_id"] = {"$nin": list(exclude_ids)}
    return query


class MongoStore(MongoDatabase):
    """The MongoDB :class:`persistence.store.Store` adapter: the queries, on
    :class:`~persistence.mongo_db.MongoDatabase`'s collections."""

    # -- users -----------------------------------------------------------------------------

    def create_user(self, user: User) -> None:
        key = fold(user.email)
        with self._op():
            try:
                self._users.insert_one(to_doc(user, **{EMAIL_KEY: key}))
            except DuplicateKeyError as e:
                pattern = (e.details or {}).get("keyPattern") or {}
                if EMAIL_KEY in pattern:
                    raise DuplicateEmail(user.email) from e
                if "_id" in pattern:
                    raise DuplicateId("user", user.id) from e
                # No keyPattern in the reply (older servers, the test stand-in): look.
                if self._users.find_one({"_id": user.id}, {"_id": 1}) is None:
                    raise DuplicateEmail(user.email) from e
                raise DuplicateId("user", user.id) from e

    def get_user(self, user_id: str) -> User | None:
        with self._op():
            doc = self._users.find_one({"_id": user_id})
        return None if doc is None else from_doc(doc, User)

    def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        if not user_ids:
            return set()
        with self._op():
            docs = self._users.find({"_id": {"$in": list(user_ids)}}, {"_id": 1})
            return {str(doc["_id"]) for doc in docs}

    def get_user_by_email(self, email: str) -> User | None:
        with self._op():
            doc = self._users.find_one({EMAIL_KEY: fold(email)})
        return None if doc is None else from_doc(doc, User)

    def delete_user(self, user_id: str) -> bool:
        with self._op():
            return self._users.delete_one({"_id": user_id}).deleted_count > 0

    def count_users_by_role(self) -> dict[str, int]:
        with self._op():
            rows = list(self._users.aggregate([{"$group": {"_id": "$role", "n": {"$sum": 1}}}]))
        return {str(row["_id"]): int(row["n"]) for row in rows}

    # -- events ----------------------------------------------------------------------------

    @staticmethod
    def _event_doc(event: Event) -> Doc:
        return to_doc(event, **{LOCATION_KEY: fold(event.location)})

    def create_event(self, event: Event) -> None:
        with self._op():
            try:
                self._events.insert_one(self._event_doc(event))
            except DuplicateKeyError as e:
                raise DuplicateId("event", event.id) from e

    def get_event(self, event_id: str) -> Event | None:
        with self._op():
            doc = self._events.find_one({"_id": event_id})
        return None if doc is None else from_doc(doc, Event)

    def replace_event(self, event: Event) -> bool:
        with self._op():
            result = self._events.replace_one({"_id": event.id}, self._event_doc(event))
        return result.matched_count > 0

    def delete_event(self, event_id: str) -> bool:
        with self._op():
            return self._events.delete_one({"_id": event_id}).deleted_count > 0

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
        query: Doc = {}
        date: Doc = {}
        if date_from_ms is not None:
            date["$gte"] = date_from_ms
        if date_to_ms is not None:
            date["$lt"] = date_to_ms
        if date:
            query["fecha"] = date
        if location:
            query[LOCATION_KEY] = {"$regex": re.escape(fold(location))}
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        with self._op():
            total = self._events.count_documents(query)
            docs = list(self._events.find(query).sort(BY_DATE).skip(offset).limit(limit))
        return [from_doc(d, Event) for d in docs], int(total)

    def all_events(self) -> list[Event]:
        with self._op():
            return [from_doc(d, Event) for d in self._events.find({}).sort(BY_DATE)]

    def count_events(self) -> int:
        with self._op():
            return int(self._events.count_documents({}))

    # -- orders ----------------------------------------------------------------------------

    def upsert_orders(self, orders: list[Order]) -> int:
        docs = [to_doc(o) for o in latest_versions(orders)]
        if not docs:
            return 0
        with self._op():
            written, duplicates = self._replace_versioned(docs)
            if duplicates:
                # Two upserts of a new id can race: both miss the filter, both insert, and
                # the loser gets E11000 although its version may be the newer. Once more,
                # now that the document exists: a second E11000 means a newer one is stored.
                again, _ = self._replace_versioned([docs[i] for i in duplicates])
                written += again
        return written

    def _replace_versioned(self, docs: list[Doc]) -> tuple[int, list[int]]:
        if self._compat:
            return self._replace_versioned_compat(docs)
        ops = [ReplaceOne(superseded_filter(d), d, upsert=True) for d in docs]
        try:
            result = self._orders.bulk_write(ops, ordered=False)
        except BulkWriteError as e:
            return bulk_outcome(dict(e.details))
        return result.matched_count + result.upserted_count, []

    def _replace_versioned_compat(self, docs: list[Doc]) -> tuple[int, list[int]]:
        # mongomock compatibility: the same versioned upserts as _replace_versioned, one
        # replace_one at a time, with the same outcome (written, duplicate-key indexes).
        written = 0
        duplicates: list[int] = []
        for index, doc in enumerate(docs):
            try:
                result = self._orders.replace_one(superseded_filter(doc), doc, upsert=True)
            except DuplicateKeyError:
                duplicates.append(index)
                continue
            written += 1 if result.matched_count or result.upserted_id is not None else 0
        return written, duplicates

    def get_order(self, order_id: str) -> Order | None:
        with self._op():
            doc = self._orders.find_one({"_id": order_id})
        return None if doc is None else from_doc(doc, Order)

    def get_orders(self, order_ids: Collection[str]) -> list[Order]:
        ids = list(order_ids)
        found: list[Order] = []
        with self._op():
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                found += [from_doc(d, Order) for d in self._orders.find({"_id": {"$in": chunk}})]
        return found

    def existing_order_ids(self, order_ids: Collection[str]) -> set[str]:
        ids = list(order_ids)
        found: set[str] = set()
        with self._op():
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                found.update(
                    str(d["_id"]) for d in self._orders.find({"_id": {"$in": chunk}}, {"_id": 1})
                )
        return found

    def list_user_orders(
        self,
        user_id: str,
        page: int,
        limit: int,
        *,
        before: int = 0,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        offset, count = page_rows(page, limit, before)
        return self._order_page(_excluding({"usuarioId": user_id}, exclude_ids), offset, count)

    def list_orders(
        self,
        page: int,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        query: Doc = _excluding({}, exclude_ids)
        if status is not None:
            query["estado"] = status
        if event_id is not None:
            query["eventoId"] = event_id
        return self._order_page(query, page_offset(page, limit), limit)

    def _order_page(self, query: Doc, offset: int, limit: int) -> tuple[list[Order], int]:
        with self._op():
            total = self._orders.count_documents(query)
            docs = list(self._orders.find(query).sort(NEWEST_FIRST).skip(offset).limit(limit))
        return [from_doc(d, Order) for d in docs], int(total)

    def order_stats(self, *, exclude_ids: Collection[str] | None = None) -> OrderStats:
        every = _excluding({}, exclude_ids)
        with self._op():
            by_status = self._orders.aggregate(
                [{"$match": every}, {"$group": {"_id": "$estado", "n": {"$sum": 1}}}]
            )
            counts = {str(row["_id"]): int(row["n"]) for row in by_status}
            confirmed = list(
                self._orders.aggregate(
                    [
                        {"$match": {**every, "estado": _CONFIRMED}},
                        {"$project": {"total": 1, "tickets": {"$sum": "$tickets.cantidad"}}},
                        {
                            "$group": {
                                "_id": None,
                                "sold": {"$sum": "$tickets"},
                                "revenue": {"$sum": "$total"},
                            }
                        },
                    ]
                )
            )
        sold = int(confirmed[0]["sold"]) if confirmed else 0
        revenue = money(confirmed[0]["revenue"]) if confirmed else 0.0
        return OrderStats(by_status=counts, tickets_sold=sold, revenue=revenue)

    def event_sales(
        self, event_id: str, *, exclude_ids: Collection[str] | None = None
    ) -> dict[str, CategorySales]:
        match = _excluding({"eventoId": event_id, "estado": _CONFIRMED}, exclude_ids)
        pipeline: list[Doc] = [
            {"$match": match},
            {"$unwind": "$tickets"},
            {
                "$group": {
                    "_id": "$tickets.categoriaId",
                    "sold": {"$sum": "$tickets.cantidad"},
                    "revenue": {
                        "$sum": {"$multiply": ["$tickets.cantidad", "$tickets.precioUnitario"]}
                    },
                }
            },
        ]
        with self._op():
            rows = list(self._orders.aggregate(pipeline))
        return {
            str(row["_id"]): CategorySales(sold=int(row["sold"]), revenue=money(row["revenue"]))
            for row in rows
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
        query: Doc = {}
        if status is not None:
            query["estado"] = status
        if event_id is not None:
            query["eventoId"] = event_id
        if after is not None:
            created, last_id = after
            query["$or"] = [
                {"creadoEn": {"$lt": created}},
                {"creadoEn": created, "_id": {"$lt": last_id}},
            ]
        with self._op():
            docs = list(self._orders.find(query).sort(NEWEST_FIRST).limit(limit))
        return [from_doc(d, Order) for d in docs]
