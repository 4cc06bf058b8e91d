"""Typed refusals of the engine, and the one mapping from script return codes to them."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base of every business refusal the engine raises."""

    code: str = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(EngineError):
    code = "invalid_request"


class EventNotFound(EngineError):
    code = "event_not_found"


class EventNotOnSale(EngineError):
    code = "event_not_on_sale"


class LimitExceeded(EngineError):
    code = "limit_exceeded"


class CategoryNotFound(EngineError):
    code = "category_not_found"


class SoldOut(EngineError):
    code = "sold_out"


class OrderNotFound(EngineError):
    code = "order_not_found"


class OrderExpired(EngineError):
    code = "order_expired"


class OrderCancelled(EngineError):
    code = "order_cancelled"


class OrderAlreadyConfirmed(EngineError):
    code = "order_already_confirmed"


class BelowCommitted(EngineError):
    """A category cannot shrink below what is already held plus sold."""

    code = "below_committed"


class CategoryInUse(EngineError):
    code = "category_in_use"


class EventBusy(EngineError):
    """Another request holds the event's edit lock for longer than we wait."""

    code = "event_busy"


class OrderIdConflict(EngineError):
    code = "order_id_conflict"


class NotReplicated(EngineError):
    """A confirm committed on the primary that too few replicas acknowledged in time
    (CONFIRM_DURABILITY=replica); retrying the same confirm is safe."""

    code = "not_replicated"


class IdempotencyKeyReused(EngineError):
    """The user sent this Idempotency-Key before with another request (another event or
    other tickets): the IETF Idempotency-Key draft's 422."""

    code = "idempotency_key_reused"


class EventPast(EngineError):
    """The event's date has passed: it is no longer on sale."""

    code = "event_past"


class OrderRetired(EngineError):
    """An Idempotency-Key replay of an order that has left Redis (finished, stored and
    past the retention window): ``details["order_id"]`` is in the store."""

    code = "order_retired"


def refusal(code: int, payload: str) -> EngineError:
    """The exception for a negative script return code (see the header of each lua/ file)."""
    if code == -1:
        return EventNotFound("event not found or not on sale in this engine")
    if code == -2:
        return EventNotOnSale(f"event is not on sale (state {payload})", state=payload)
    if code == -3:
        return LimitExceeded(
            f"at most {payload} tickets per order", limit=int(payload) if payload else None
        )
    if code == -4:
        return CategoryNotFound(f"category {payload} not found", category=payload)
    if code == -5:
        category, _, available = payload.rpartition(":")
        return SoldOut(
            f"not enough tickets in category {category}: {available} available",
            category=category,
            available=int(available),
        )
    if code == -6:
        return InvalidRequest("malformed request")
    if code == -7:
        return OrderNotFound("order not found")
    if code == -8:
        return OrderExpired("order expired")
    if code == -9:
        return OrderCancelled("order was cancelled")
    if code == -10:
        return OrderAlreadyConfirmed("order already confirmed")
    if code == -11:
        return InvalidRequest(f"sold exceeds total for category {payload}", category=payload)
    if code == -12:
        return BelowCommitted(f"{payload} tickets are already held or sold", committed=int(payload))
    if code == -13:
        return CategoryInUse(f"category has {payload} tickets held or sold", committed=int(payload))
    if code == -14:
        return OrderIdConflict("order id already used")
    if code == -15:
        return IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request"
        )
    if code == -16:
        return EventPast(
            "the event has already taken place", date=int(payload) if payload else None
        )
    return EngineError(f"unexpected script code {code}: {payload}")
