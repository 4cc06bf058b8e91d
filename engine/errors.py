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


class BuyerLimit(EngineError):
    """The buyer's tickets in the event, held plus sold, would pass ``maxPorComprador``;
    ``details["restantes"]`` is how many more they may hold."""

    code = "buyer_limit"


class StockAvailable(EngineError):
    """A waitlist is for sold-out categories: this one has tickets on sale."""

    code = "stock_available"


class WaitlistDuplicate(EngineError):
    """The buyer already waits (or has an offer) in this category."""

    code = "waitlist_duplicate"


class NotInWaitlist(EngineError):
    code = "not_in_waitlist"


class ExtensionRefused(EngineError):
    """A hold extension refused; ``details["reason"]``: ``not_reserved``, ``limit``,
    ``cap`` or ``contested``."""

    code = "extension_refused"


class QueueNotFound(EngineError):
    """The event has no admission queue."""

    code = "queue_not_found"


class QueueNotStarted(EngineError):
    """The pre-queue opens at ``abreEn - preColaMinutos`` (``details["startsAt"]``, ms)."""

    code = "queue_not_started"


class NotInQueue(EngineError):
    code = "not_in_queue"


class QueueAlreadyOpen(EngineError):
    """Once the opening started, ``abreEn`` is fixed (the order depends on it)."""

    code = "queue_already_open"


class AdmissionRefused(EngineError):
    """A hold for an event with a queue, without a valid admission (SPEC 10.1)."""


class AdmissionRequired(AdmissionRefused):
    code = "admission_required"


class AdmissionInvalid(AdmissionRefused):
    code = "admission_invalid"


class AdmissionExpired(AdmissionRefused):
    code = "admission_expired"


class AdmissionUsed(AdmissionRefused):
    code = "admission_used"


_QUEUE_REFUSALS: dict[int, tuple[type[EngineError], str]] = {
    -40: (QueueNotFound, "this event has no admission queue"),
    -42: (NotInQueue, "you are not in this event's queue"),
    -43: (QueueAlreadyOpen, "the queue has opened: abreEn can no longer change"),
    -45: (AdmissionRequired, "this event sells through its queue: send Admission-Token"),
    -46: (AdmissionInvalid, "this admission token is not yours or not for this event"),
    -47: (AdmissionExpired, "this admission has expired: join the queue again"),
    -48: (AdmissionUsed, "this admission token was already used"),
}


_EXTENSION_REASONS = {
    "not_reserved": "only a held order that has not expired can be extended",
    "limit": "this order has used all its extensions",
    "cap": "this order is at its longest hold",
    "contested": "buyers are waiting for these tickets",
}


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
    if code == -17:
        left = int(payload) if payload else 0
        return BuyerLimit(
            f"at most {left} more tickets for this buyer in this event", restantes=left
        )
    if code == -18:
        return StockAvailable(
            "tickets of this category are on sale: buy them instead",
            available=int(payload) if payload else None,
        )
    if code == -19:
        return WaitlistDuplicate("you are already on the waitlist of this category")
    if code == -20:
        return NotInWaitlist("you are not on the waitlist of this category")
    if code == -21:
        return ExtensionRefused(
            f"extension refused: {_EXTENSION_REASONS.get(payload, payload)}", reason=payload
        )
    if code == -41:
        return QueueNotStarted(
            "the pre-queue has not started yet", startsAt=int(payload) if payload else None
        )
    if code in _QUEUE_REFUSALS:
        kind, message = _QUEUE_REFUSALS[code]
        return kind(message)
    return EngineError(f"unexpected script code {code}: {payload}")
