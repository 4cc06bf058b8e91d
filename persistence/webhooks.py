"""The webhook port: registered endpoints and their deliveries (:class:`WebhookStore`),
opened beside the main store by :func:`open_webhook_store`, and :class:`AsyncWebhookStore`
for async callers.

Kept apart from :mod:`persistence.store` so the order store's port stays the contract of
section 7 and webhooks can be stored (and scaled) on their own. The deliveries table is the
dispatcher's durable queue: a delivery is recorded before its order-log entry is
acknowledged, and retried from here, so a restart loses nothing.

A delivery's ``subject`` (an order id, or an event id for event notifications) and ``seq``
(the order-log position, :func:`seq_of`) make the per-endpoint, per-subject queue:
:meth:`WebhookStore.due_deliveries` only returns the oldest pending delivery of each
(endpoint, subject), so a confirm is never delivered before its hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import msgspec

from engine.models import iso
from persistence.pooled import PooledAdapter

WEBHOOKS_SQLITE_FILENAME = "webhooks.db"

DeliveryStatus = Literal["PENDING", "DELIVERED", "FAILED"]
PENDING: DeliveryStatus = "PENDING"
DELIVERED: DeliveryStatus = "DELIVERED"
FAILED: DeliveryStatus = "FAILED"


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    """A receiver registered by ``owner_id``; ``event_id`` None means every event."""

    id: str
    owner_id: str = msgspec.field(name="usuarioId")
    url: str
    types: list[str] = msgspec.field(name="eventos")
    event_id: str | None = msgspec.field(default=None, name="eventoId")
    secret: str = msgspec.field(name="secreto")
    active: bool = msgspec.field(default=True, name="activo")
    disabled_reason: str | None = msgspec.field(default=None, name="motivoDesactivacion")
    disabled_at: int | None = msgspec.field(default=None, name="desactivadoEn")
    created_at: int = msgspec.field(name="creadoEn")
    consecutive_failures: int = msgspec.field(default=0, name="fallosSeguidos")
    failing_since: int | None = msgspec.field(default=None, name="fallandoDesde")

    def wants(self, kind: str, event_id: str) -> bool:
        return (
            self.active
            and kind in self.types
            and (self.event_id is None or self.event_id == event_id)
        )


class Delivery(msgspec.Struct, kw_only=True):
    """One message to one endpoint. ``body`` is the exact JSON sent (and signed) on every
    attempt; ``id`` is its ``webhook-id``."""

    id: str
    endpoint_id: str = msgspec.field(name="endpointId")
    type: str = msgspec.field(name="tipo")
    subject: str = msgspec.field(name="sujeto")
    seq: str
    body: str
    status: DeliveryStatus = msgspec.field(default="PENDING", name="estado")
    attempts: int = msgspec.field(default=0, name="intentos")
    last_code: int | None = msgspec.field(default=None, name="ultimoCodigo")
    latency_ms: int | None = msgspec.field(default=None, name="latenciaMs")
    last_error: str | None = msgspec.field(default=None, name="ultimoError")
    created_at: int = msgspec.field(name="creadoEn")
    next_at: int = msgspec.field(name="siguienteEn")
    finished_at: int | None = msgspec.field(default=None, name="terminadoEn")


class Attempt(msgspec.Struct, kw_only=True):
    """The outcome of one attempt, as :meth:`WebhookStore.record_attempt` stores it."""

    status: DeliveryStatus
    next_at: int
    code: int | None
    latency_ms: int | None
    error: str | None
    at: int


class WebhookStore(Protocol):
    """Endpoints and deliveries. Every adapter must pass ``tests/contract/test_webhooks.py``."""

    def close(self) -> None: ...

    def create_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    def list_endpoints(
        self, page: int, limit: int, *, owner_id: str | None = None
    ) -> tuple[list[WebhookEndpoint], int]:
        """Newest first; only ``owner_id``'s when given."""

    def active_endpoints(self) -> list[WebhookEndpoint]: ...

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Drop the endpoint and its deliveries; False when it did not exist."""

    def add_deliveries(self, deliveries: list[Delivery]) -> int:
        """Insert the deliveries whose id is new (a replayed log entry adds nothing);
        returns how many were new."""

    def due_deliveries(self, now_ms: int, limit: int) -> list[Delivery]:
        """Pending deliveries of active endpoints due by ``now_ms``, each the oldest
        (lowest ``seq``) pending one of its (endpoint, subject); soonest due first."""

    def claim_delivery(self, delivery_id: str, expected_next_at: int, lease_until: int) -> bool:
        """Move a pending delivery's ``next_at`` from ``expected_next_at`` to
        ``lease_until``; False when someone else did first (another dispatcher)."""

    def claim_deliveries(self, claims: list[tuple[str, int]], lease_until: int) -> list[str]:
        """:meth:`claim_delivery` for many (id, expected next_at) at once; the ids won."""

    def record_attempt(self, delivery_id: str, attempt: Attempt) -> None: ...

    def record_endpoint_result(
        self,
        endpoint_id: str,
        ok: bool,
        now_ms: int,
        *,
        disable_after_failures: int,
        disable_after_ms: int,
    ) -> bool:
        """Count a success (resets) or a failure; a failure that makes
        ``disable_after_failures`` in a row over at least ``disable_after_ms`` disables
        the endpoint (its pending deliveries become FAILED). True when it disabled it."""

    def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    def list_deliveries(
        self, endpoint_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        """An endpoint's deliveries, newest first, and their total."""


def apply_attempt(delivery: Delivery, attempt: Attempt) -> Delivery:
    """``delivery`` after ``attempt`` (shared by the adapters)."""
    delivery.attempts += 1
    delivery.status = attempt.status
    delivery.next_at = attempt.next_at
    delivery.last_code = attempt.code
    delivery.latency_ms = attempt.latency_ms
    delivery.last_error = attempt.error
    if attempt.status != PENDING:
        delivery.finished_at = attempt.at
    return delivery


def should_disable(
    endpoint: WebhookEndpoint, now_ms: int, *, disable_after_failures: int, disable_after_ms: int
) -> bool:
    """Whether a failed delivery leaves ``endpoint`` (its failure count already raised)
    due to be disabled (shared by the adapters)."""
    return (
        endpoint.active
        and endpoint.consecutive_failures >= disable_after_failures
        and now_ms - (endpoint.failing_since or now_ms) >= disable_after_ms
    )


def disabled_reason(endpoint: WebhookEndpoint) -> str:
    """What GET shows for an endpoint the dispatcher disabled."""
    return (
        f"disabled after {endpoint.consecutive_failures} consecutive failed deliveries "
        f"since {iso(endpoint.failing_since or 0)}"
    )


def seq_of(stream_id: str) -> str:
    """A stream id as a string that sorts like the id (``ms-seq`` zero-padded)."""
    ms, _, seq = stream_id.partition("-")
    return f"{int(ms):016d}-{int(seq or 0):010d}"


def open_webhook_store(mongodb_uri: str | None, data_dir: Path) -> WebhookStore:
    """Collections beside the order store's in MongoDB when configured, else the SQLite
    file ``data_dir/webhooks.db``."""
    if mongodb_uri:
        from persistence.webhooks_mongo import MongoWebhookStore

        return MongoWebhookStore(mongodb_uri)
    from persistence.webhooks_sqlite import SQLiteWebhookStore

    return SQLiteWebhookStore(data_dir / WEBHOOKS_SQLITE_FILENAME)


class AsyncWebhookStore(PooledAdapter[WebhookStore]):
    """A :class:`WebhookStore` whose methods are coroutines, run in a bounded thread
    pool of its own (a slow webhook query never queues behind order writes)."""

    def __init__(self, store: WebhookStore, *, max_workers: int = 2) -> None:
        super().__init__(
            store,
            max_workers=max_workers,
            thread_name_prefix="webhooks",
            closed_message="the webhook store is closed",
        )

    async def create_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._run(self.store.create_endpoint, endpoint)

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self._run(self.store.get_endpoint, endpoint_id)

    async def list_endpoints(
        self, page: int, limit: int, *, owner_id: str | None = None
    ) -> tuple[list[WebhookEndpoint], int]:
        return await self._run(self.store.list_endpoints, page, limit, owner_id=owner_id)

    async def active_endpoints(self) -> list[WebhookEndpoint]:
        return await self._run(self.store.active_endpoints)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return await self._run(self.store.delete_endpoint, endpoint_id)

    async def add_deliveries(self, deliveries: list[Delivery]) -> int:
        return await self._run(self.store.add_deliveries, deliveries)

    async def due_deliveries(self, now_ms: int, limit: int) -> list[Delivery]:
        return await self._run(self.store.due_deliveries, now_ms, limit)

    async def claim_delivery(
        self, delivery_id: str, expected_next_at: int, lease_until: int
    ) -> bool:
        return await self._run(
            self.store.claim_delivery, delivery_id, expected_next_at, lease_until
        )

    async def claim_deliveries(self, claims: list[tuple[str, int]], lease_until: int) -> list[str]:
        return await self._run(self.store.claim_deliveries, claims, lease_until)

    async def record_attempt(self, delivery_id: str, attempt: Attempt) -> None:
        await self._run(self.store.record_attempt, delivery_id, attempt)

    async def record_endpoint_result(
        self,
        endpoint_id: str,
        ok: bool,
        now_ms: int,
        *,
        disable_after_failures: int,
        disable_after_ms: int,
    ) -> bool:
        return await self._run(
            self.store.record_endpoint_result,
            endpoint_id,
            ok,
            now_ms,
            disable_after_failures=disable_after_failures,
            disable_after_ms=disable_after_ms,
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return await self._run(self.store.get_delivery, delivery_id)

    async def list_deliveries(
        self, endpoint_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        return await self._run(self.store.list_deliveries, endpoint_id, page, limit)
