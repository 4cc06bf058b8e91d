"""What is sent: order-log entries and event changes as webhook messages (type, body,
stable delivery id) for the endpoints that want them.

The body is fixed when the delivery is recorded, so every retry sends (and signs) the same
bytes under the same ``webhook-id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from engine.models import Order, iso
from engine.vocabulary import OrderStatus
from persistence.webhooks import Delivery, WebhookEndpoint, seq_of

ORDER_CREATED = "order.created"
ORDER_CONFIRMED = "order.confirmed"
ORDER_CANCELLED = "order.cancelled"
ORDER_EXPIRED = "order.expired"
EVENT_SOLD_OUT = "event.sold_out"
EVENT_UPDATED = "event.updated"
WEBHOOK_TEST = "webhook.test"
TYPES = (
    ORDER_CREATED,
    ORDER_CONFIRMED,
    ORDER_CANCELLED,
    ORDER_EXPIRED,
    EVENT_SOLD_OUT,
    EVENT_UPDATED,
    WEBHOOK_TEST,
)

_BY_STATUS = {
    OrderStatus.CONFIRMED.value: ORDER_CONFIRMED,
    OrderStatus.CANCELLED.value: ORDER_CANCELLED,
    OrderStatus.EXPIRED.value: ORDER_EXPIRED,
}

_encode = msgspec.json.Encoder().encode


def order_type(order: Order) -> str | None:
    """The message of an order-log entry: a hold (its first version) is
    ``order.created``; a later RESERVED version (a hold extension) sends nothing."""
    if order.status == OrderStatus.RESERVED.value:
        return ORDER_CREATED if order.version <= 1 else None
    return _BY_STATUS.get(order.status)


def delivery_id(*parts: str) -> str:
    """A stable id from what identifies the message and its endpoint (the same entry
    read twice makes the same delivery, stored once)."""
    return "msg_" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def body(kind: str, at_ms: int, data: Any) -> str:
    return _encode({"type": kind, "timestamp": iso(at_ms), "data": data}).decode()


def deliveries_for(
    endpoints: Iterable[WebhookEndpoint],
    kind: str,
    event_id: str,
    *,
    source: str,
    stream_id: str,
    subject: str,
    payload: str,
    now_ms: int,
) -> list[Delivery]:
    """One delivery per endpoint that wants ``kind`` for ``event_id`` and existed when
    the change happened (``stream_id``'s time): an endpoint receives changes made after
    its registration, not the log's history."""
    at = int(stream_id.partition("-")[0])
    return [
        Delivery(
            id=delivery_id(source, stream_id, ep.id, kind),
            endpoint_id=ep.id,
            type=kind,
            subject=subject,
            seq=seq_of(stream_id),
            body=payload,
            created_at=now_ms,
            next_at=now_ms,
        )
        for ep in endpoints
        if ep.wants(kind, event_id) and ep.created_at <= at
    ]
