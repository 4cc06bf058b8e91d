"""The MongoDB :class:`~persistence.webhooks.WebhookStore`: collections
``webhook_endpoints`` and ``webhook_deliveries`` in the order store's database, with the
same explicit durability (write concern majority, journaled; read concern majority).

``_id`` is our id; fields carry the wire names of :mod:`persistence.webhooks`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    WriteConcernError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from persistence.errors import DuplicateId, StoreError, StoreUnavailable
from persistence.store import page_offset
from persistence.webhooks import (
    FAILED,
    PENDING,
    Attempt,
    Delivery,
    WebhookEndpoint,
    apply_attempt,
    disabled_reason,
)

log = logging.getLogger(__name__)

Doc = dict[str, Any]
DEFAULT_DATABASE = "onsale"
_NEWEST_FIRST = [("creadoEn", DESCENDING), ("_id", DESCENDING)]


def _to_doc(value: msgspec.Struct) -> Doc:
    doc: Doc = msgspec.to_builtins(value)
    doc["_id"] = doc.pop("id")
    return doc


def _endpoint(doc: Doc) -> WebhookEndpoint:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return msgspec.convert(doc, WebhookEndpoint)


def _delivery(doc: Doc) -> Delivery:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    return msgspec.convert(doc, Delivery)


class MongoWebhookStore:
    def __init__(
        self,
        uri: str | None = None,
        *,
        client: MongoClient[Doc] | None = None,
        database: str | None = None,
        write_timeout_ms: int = 10_000,
    ) -> None:
        if client is None:
            if not uri:
                raise ValueError("MongoWebhookStore needs a URI or a client")
            client = MongoClient(
                uri, retryWrites=True, retryReads=True, serverSelectionTimeoutMS=5_000
            )
            self._owns_client = True
        else:
            self._owns_client = False
        self._client = client
        db = (
            client.get_database(database)
            if database
            else client.get_default_database(default=DEFAULT_DATABASE)
        )
        majority = WriteConcern(w="majority", j=True, wtimeout=write_timeout_ms)
        self._endpoints, self._deliveries = (
            db.get_collection(name).with_options(
                write_concern=majority, read_concern=ReadConcern("majority")
            )
            for name in ("webhook_endpoints", "webhook_deliveries")
        )
        self._indexed = False
        self._index_lock = threading.Lock()
        try:
            self._ensure_indexes()
        except StoreUnavailable as e:
            log.warning("mongodb not reachable at start-up, webhook indexes deferred: %s", e)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (ConnectionFailure, WriteConcernError, ExecutionTimeout) as e:
            raise StoreUnavailable(f"mongodb: {e}") from e
        except PyMongoError as e:
            if e.has_error_label("RetryableWriteError"):
                raise StoreUnavailable(f"mongodb: {e}") from e
            raise StoreError(f"mongodb: {e}") from e

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        with self._index_lock, self._errors():
            if self._indexed:
                return
            self._endpoints.create_index([("usuarioId", ASCENDING), *_NEWEST_FIRST])
            self._endpoints.create_index(_NEWEST_FIRST)
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
            self._deliveries.create_index([("endpointId", ASCENDING), *_NEWEST_FIRST])
            self._indexed = True

    @contextlib.contextmanager
    def _op(self) -> Iterator[None]:
        self._ensure_indexes()
        with self._errors():
            yield

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- endpoints -------------------------------------------------------------------------

    def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        try:
            with self._op():
                self._endpoints.insert_one(_to_doc(endpoint))
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
                .sort(_NEWEST_FIRST)
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
            if not (
                ep.active
                and ep.consecutive_failures >= disable_after_failures
                and now_ms - (ep.failing_since or now_ms) >= disable_after_ms
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
                doc = _to_doc(d)
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
            self._deliveries.replace_one({"_id": delivery_id}, _to_doc(d))

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
                .sort(_NEWEST_FIRST)
                .skip(page_offset(page, limit))
                .limit(limit)
            )
        return [_delivery(d) for d in docs], int(total)
