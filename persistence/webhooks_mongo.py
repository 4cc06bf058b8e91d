"""The MongoDB :class:`~persistence.webhooks.WebhookStore`: collections
``webhook_endpoints`` and ``webhook_deliveries`` in the order store's database, with the
same explicit durability (write concern majority, journaled; read concern majority).

``_id`` is our id; fields carry the wire names of :mod:`persistence.webhooks`.
"""

from __future__ import annotations

import logging

from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from persistence.errors import DuplicateId, StoreError
from persistence.mongo_db import NEWEST_FIRST, Doc, MongoDatabase, from_doc, to_doc
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

log = logging.getLogger(__name__)


def _endpoint(doc: Doc) -> WebhookEndpoint:
    return from_doc(doc, WebhookEndpoint)


def _delivery(doc: Doc) -> Delivery:
    return from_doc(doc, Delivery)


class MongoWebhookStore(MongoDatabase):
    """Client, durability, error mapping and deferred indexes from :class:`MongoDatabase`;
    the webhook collections and their indexes."""

    _name = "MongoWebhookStore"
    _transient_labels = ("RetryableWriteError",)
    _log = log
    _deferred_message = "mongodb not reachable at start-up, webhook indexes deferred: %s"

    @staticmethod
    def _new_client(uri: str, server_selection_timeout_ms: int) -> MongoClient[Doc]:
        return MongoClient(
            uri,
            retryWrites=True,
            retryReads=True,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
        )

    def _open_collections(self, db: Database[Doc]) -> None:
        self._endpoints, self._deliveries = (
            self._durable(db, name) for name in ("webhook_endpoints", "webhook_deliveries")
        )

    def _create_indexes(self) -> None:
        self._endpoints.create_index([("usuarioId", ASCENDING), *NEWEST_FIRST])
        self._endpoints.create_index(NEWEST_FIRST)
        self._endpoints.create_index([("activo", ASCENDING)])
        self._deliveries.create_index([("estado", ASCENDING), ("siguienteEn", ASCENDING)])
        self._deliveries.create_index(
            [
                ("endpointId", ASCENDING),
                ("sujeto", ASCENDING),
                ("estado", ASCENDING),
                ("seq", ASCENDING),
            ]
        )
        self._deliveries.create_index([("endpointId", ASCENDING), *NEWEST_FIRST])

    # -- endpoints -------------------------------------------------------------------------

    def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        try:
            with self._op():
                self._endpoints.insert_one(to_doc(endpoint))
        except StoreError as e:
            if isinstance(e.__cause__, DuplicateKeyError):
                raise DuplicateId("webhook", endpoint.id) from e
            raise

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._op():
            doc = self._endpoints.find_one({"_id": endpoint_id})
        return _endpoint(doc) if doc else None

    def list_endpoints(
        self, page: int, limit: int, *, owner_id: str | None = None
    ) -> tuple[list[WebhookEndpoint], int]:
        query: Doc = {} if owner_id is None else {"usuarioId": owner_id}
        with self._op():
            total = self._endpoints.count_documents(query)
            docs = list(
                self._endpoints.find(query)
                .sort(NEWEST_FIRST)
                .skip(page_offset(page, limit))
                .limit(limit)
            )
        return [_endpoint(d) for d in docs], int(total)

    def active_endpoints(self) -> list[WebhookEndpoint]:
        with self._op():
            return [_endpoint(d) for d in self._endpoints.find({"activo": True})]

    def delete_endpoint(self, endpoint_id: str) -> bool:
        with self._op():
            gone = self._endpoints.delete_one({"_id": endpoint_id}).deleted_count
            self._deliveries.delete_many({"endpointId": endpoint_id})
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
        with self._op():
            if ok:
                self._endpoints.update_one(
                    {"_id": endpoint_id, "fallosSeguidos": {"$gt": 0}},
                    {"$set": {"fallosSeguidos": 0, "fallandoDesde": None}},
                )
                return False
            self._endpoints.update_one(
                {"_id": endpoint_id, "fallandoDesde": None}, {"$set": {"fallandoDesde": now_ms}}
            )
            doc = self._endpoints.find_one_and_update(
                {"_id": endpoint_id},
                {"$inc": {"fallosSeguidos": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                return False
            ep = _endpoint(doc)
            if not should_disable(
                ep,
                now_ms,
                disable_after_failures=disable_after_failures,
                disable_after_ms=disable_after_ms,
            ):
                return False
            disabled = self._endpoints.update_one(
                {"_id": endpoint_id, "activo": True},
                {
                    "$set": {
                        "activo": False,
                        "desactivadoEn": now_ms,
                        "motivoDesactivacion": disabled_reason(ep),
                    }
                },
            ).modified_count
            self._deliveries.update_many(
                {"endpointId": endpoint_id, "estado": PENDING},
                {
                    "$set": {
                        "estado": FAILED,
                        "terminadoEn": now_ms,
                        "ultimoError": "endpoint disabled",
                    }
                },
            )
        return bool(disabled)

    # -- deliveries ------------------------------------------------------------------------

    def add_deliveries(self, deliveries: list[Delivery]) -> int:
        added = 0
        with self._op():
            # Unordered upserts that only insert ($setOnInsert): a replayed entry adds nothing.
            for d in deliveries:
                doc = to_doc(d)
                result = self._deliveries.update_one(
                    {"_id": doc.pop("_id")}, {"$setOnInsert": doc}, upsert=True
                )
                added += result.upserted_id is not None
        return added

    def due_deliveries(self, now_ms: int, limit: int) -> list[Delivery]:
        with self._op():
            active = {d["_id"] for d in self._endpoints.find({"activo": True}, {"_id": 1})}
            if not active:
                return []
            out: list[Delivery] = []
            seen: set[tuple[str, str]] = set()
            candidates = (
                self._deliveries.find(
                    {
                        "estado": PENDING,
                        "siguienteEn": {"$lte": now_ms},
                        "endpointId": {"$in": sorted(active)},
                    }
                )
                .sort([("siguienteEn", ASCENDING), ("seq", ASCENDING)])
                .limit(limit * 4)
            )
            for doc in candidates:
                queue = (doc["endpointId"], doc["sujeto"])
                if queue in seen:
                    continue
                earlier = self._deliveries.find_one(
                    {
                        "endpointId": queue[0],
                        "sujeto": queue[1],
                        "estado": PENDING,
                        "seq": {"$lt": doc["seq"]},
                    },
                    {"_id": 1},
                )
                if earlier is None:
                    seen.add(queue)
                    out.append(_delivery(doc))
                    if len(out) >= limit:
                        break
        return out

    def claim_delivery(self, delivery_id: str, expected_next_at: int, lease_until: int) -> bool:
        with self._op():
            result = self._deliveries.update_one(
                {"_id": delivery_id, "estado": PENDING, "siguienteEn": expected_next_at},
                {"$set": {"siguienteEn": lease_until}},
            )
        return result.modified_count == 1

    def claim_deliveries(self, claims: list[tuple[str, int]], lease_until: int) -> list[str]:
        return [d for d, expected in claims if self.claim_delivery(d, expected, lease_until)]

    def record_attempt(self, delivery_id: str, attempt: Attempt) -> None:
        with self._op():
            doc = self._deliveries.find_one({"_id": delivery_id})
            if doc is None:
                return
            d = apply_attempt(_delivery(doc), attempt)
            self._deliveries.replace_one({"_id": delivery_id}, to_doc(d))

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._op():
            doc = self._deliveries.find_one({"_id": delivery_id})
        return _delivery(doc) if doc else None

    def list_deliveries(
        self, endpoint_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        query = {"endpointId": endpoint_id}
        with self._op():
            total = self._deliveries.count_documents(query)
            docs = list(
                self._deliveries.find(query)
                .sort(NEWEST_FIRST)
                .skip(page_offset(page, limit))
                .limit(limit)
            )
        return [_delivery(d) for d in docs], int(total)
