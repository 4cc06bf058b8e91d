"""The MongoDB adapter's database: the client (retryable writes and reads, our timeouts
unless the URI sets its own), the ``users``, ``events`` and ``orders`` collections with
their durability made explicit (write concern ``majority`` + journaled with a timeout, so
a degraded replica set surfaces as :class:`StoreUnavailable` instead of hanging, read
concern ``majority``), their indexes (deferred when MongoDB is unreachable at start-up),
pymongo's errors mapped to the store's, and documents to and from our Structs (``_id`` =
our id). :class:`MongoDatabase` is the base of :class:`persistence.mongo.MongoStore`,
which holds the queries."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import msgspec
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WriteConcernError
from pymongo.read_concern import ReadConcern
from pymongo.uri_parser import parse_uri
from pymongo.write_concern import WriteConcern

from persistence.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

Doc = dict[str, Any]
S = TypeVar("S", bound=msgspec.Struct)

DEFAULT_DATABASE = "onsale"

# Internal, derived fields stored next to the contract's fields (never decoded).
EMAIL_KEY = "emailLower"
LOCATION_KEY = "ubicacionLower"

NEWEST_FIRST = [("creadoEn", DESCENDING), ("_id", DESCENDING)]
BY_DATE = [("fecha", ASCENDING), ("_id", ASCENDING)]


def to_doc(value: msgspec.Struct, **extra: Any) -> Doc:
    doc: Doc = msgspec.to_builtins(value)
    doc["_id"] = doc.pop("id")
    doc.update(extra)
    return doc


def from_doc(doc: Doc, type_: type[S]) -> S:
    fields = dict(doc)
    fields["id"] = fields.pop("_id")
    return msgspec.convert(fields, type_)


def _client_options(uri: str, timeout_ms: int) -> Doc:
    """Retryable writes and reads always; our timeouts unless the URI sets its own
    (keyword arguments would override the URI's options)."""
    options: Doc = {"retryWrites": True, "retryReads": True}
    in_uri = {name.lower() for name in parse_uri(uri)["options"]}
    defaults = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "onsale",
    }
    options.update({k: v for k, v in defaults.items() if k.lower() not in in_uri})
    return options


class MongoDatabase:
    """The client, the collections and their indexes (see the module).

    A subclass with other collections overrides ``_open_collections`` and
    ``_create_indexes`` (and, to differ, ``_name``, ``_new_client``, ``_transient_labels``,
    ``_log`` and ``_deferred_message``)."""

    _name = "MongoStore"
    _transient_labels: tuple[str, ...] = ("RetryableWriteError", "TransientTransactionError")
    _log = log
    _deferred_message = "mongodb not reachable at start-up, indexes deferred: %s"

    def __init__(
        self,
        uri: str | None = None,
        *,
        client: MongoClient[Doc] | None = None,
        database: str | None = None,
        server_selection_timeout_ms: int = 5_000,
        write_timeout_ms: int = 10_000,
    ) -> None:
        if client is None:
            if not uri:
                raise ValueError(f"{self._name} needs a URI or a client")
            client = self._new_client(uri, server_selection_timeout_ms)
            self._owns_client = True
        else:
            self._owns_client = False
        self._client = client
        # mongomock compatibility: mongomock 4.3's bulk_write cannot take the operations of
        # pymongo >= 4.9 (it rejects their ``sort`` argument); see
        # persistence.mongo's _replace_versioned_compat.
        self._compat = type(client).__module__.startswith("mongomock")
        db = (
            client.get_database(database)
            if database
            else client.get_default_database(default=DEFAULT_DATABASE)
        )
        self.database_name: str = db.name
        self._write_concern = WriteConcern(w="majority", j=True, wtimeout=write_timeout_ms)
        self._open_collections(db)
        self._indexed = False
        self._index_lock = threading.Lock()
        try:
            self._ensure_indexes()
        except StoreUnavailable as e:
            # Start anyway: the writer backs off and the next call tries again.
            self._log.warning(self._deferred_message, e)

    # -- plumbing --------------------------------------------------------------------------

    @staticmethod
    def _new_client(uri: str, server_selection_timeout_ms: int) -> MongoClient[Doc]:
        return MongoClient(uri, **_client_options(uri, server_selection_timeout_ms))

    def _durable(self, db: Database[Doc], name: str) -> Collection[Doc]:
        """Collection ``name`` with write concern majority (journaled) and read concern
        majority."""
        return db.get_collection(name).with_options(
            write_concern=self._write_concern, read_concern=ReadConcern("majority")
        )

    def _open_collections(self, db: Database[Doc]) -> None:
        self._users, self._events, self._orders = (
            self._durable(db, name) for name in ("users", "events", "orders")
        )

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (ConnectionFailure, WriteConcernError, ExecutionTimeout) as e:
            raise StoreUnavailable(f"mongodb: {e}") from e
        except PyMongoError as e:
            if any(e.has_error_label(label) for label in self._transient_labels):
                raise StoreUnavailable(f"mongodb: {e}") from e
            raise StoreError(f"mongodb: {e}") from e

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        with self._index_lock, self._errors():
            if self._indexed:
                return
            self._create_indexes()
            self._indexed = True

    def _create_indexes(self) -> None:
        self._users.create_index([(EMAIL_KEY, ASCENDING)], unique=True, name="email_unique")
        self._users.create_index([("role", ASCENDING)], name="role")
        self._events.create_index(BY_DATE, name="date")
        self._orders.create_index([("usuarioId", ASCENDING), *NEWEST_FIRST], name="user_newest")
        self._orders.create_index([("estado", ASCENDING), *NEWEST_FIRST], name="status_newest")
        self._orders.create_index([("eventoId", ASCENDING), *NEWEST_FIRST], name="event_newest")
        self._orders.create_index(NEWEST_FIRST, name="newest")

    @contextlib.contextmanager
    def _op(self) -> Iterator[None]:
        """Every public method: indexes in place (deferred at start-up), errors mapped."""
        self._ensure_indexes()
        with self._errors():
            yield

    def ping(self) -> None:
        with self._errors():
            self._client.admin.command("ping")

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
