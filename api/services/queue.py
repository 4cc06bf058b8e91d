"""The admission-queue rules (SPEC 10.1): who may configure or delete an event's queue and
with what numbers, joining (one place per buyer), the heartbeat (rate-limited), leaving,
and the organizer's figures.

Admissions themselves are decided by the engine's admit script (the admitter loop, in
engine/queue.py) and checked and consumed by the hold script: this service never moves
stock, and never admits anyone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from api.security import Principal, RateLimiter
from api.services.errors import Forbidden, Invalid, NotFound, RateLimited
from engine.core import Engine
from engine.errors import QueueNotFound
from engine.queue import Place, QueueEngine, QueueInfo, QueueSettings
from persistence.aio import AsyncStore
from persistence.store import Event

PAST_TOLERANCE_MS = 1_000  # clocks differ a little; a second in the past is "now"


@dataclass(frozen=True)
class QueueView:
    """A queue with the state the API shows (CERRADA while the event is not on sale)."""

    info: QueueInfo
    state: str


@dataclass(frozen=True)
class QueueFigures:
    """What the organizer's sales view shows of the queue."""

    info: QueueInfo
    state: str
    outflow_per_minute: int


class QueueService:
    def __init__(
        self,
        engine: Engine,
        store: AsyncStore,
        heartbeat_limiter: RateLimiter,
        *,
        max_per_order: int = 10,
    ) -> None:
        self.engine = engine
        self.queues = QueueEngine(engine)
        self.store = store
        self.heartbeats = heartbeat_limiter
        self.max_per_order = max_per_order

    async def _event(self, event_id: str) -> Event:
        event = await self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        return event

    async def _owned(self, who: Principal, event_id: str) -> Event:
        event = await self._event(event_id)
        if not who.is_admin and event.organizer_id != who.id:
            raise Forbidden("only the event's organizer or an ADMIN", code="not_owner")
        return event

    async def _view(self, event_id: str) -> QueueView:
        info = await self.queues.info(event_id)
        if info is None:
            raise NotFound("this event has no admission queue", code="queue_not_found")
        stock = await self.engine.stock(event_id)
        state = info.state if stock is not None and stock.state == "open" else "CERRADA"
        return QueueView(info, state)

    # -- the organizer ---------------------------------------------------------------

    async def configure(
        self,
        who: Principal,
        event_id: str,
        *,
        opens_at: datetime,
        pre_queue_minutes: float,
        admissions_per_minute: int | None,
        admission_minutes: float,
        tickets_per_admission: int,
        heartbeat_s: int,
    ) -> QueueView:
        """Create or change the queue. ``abreEn`` must be in the future for a new queue
        (422 ``queue_opens_in_past``) and cannot move once the queue opened (409
        ``queue_already_open``); ``entradasPorAdmision`` is at most the per-order limit."""
        await self._owned(who, event_id)
        opens_ms = int(opens_at.timestamp() * 1000)
        if opens_at.tzinfo is None:
            raise Invalid(
                "abreEn needs a time zone (e.g. 2027-06-01T20:00:00Z)",
                code="validation_failed",
                fields={"abreEn": "needs a time zone"},
            )
        current = await self.queues.info(event_id)
        moved = current is None or current.opens_at_ms != opens_ms
        if moved and opens_ms < time.time() * 1000 - PAST_TOLERANCE_MS:
            raise Invalid(
                "abreEn is in the past",
                code="queue_opens_in_past",
                fields={"abreEn": "must be in the future"},
            )
        if tickets_per_admission > self.max_per_order:
            raise Invalid(
                f"entradasPorAdmision is at most the per-order limit ({self.max_per_order})",
                code="validation_failed",
                fields={"entradasPorAdmision": f"at most {self.max_per_order}"},
            )
        await self.queues.configure(
            event_id,
            QueueSettings(
                opens_at_ms=opens_ms,
                pre_queue_minutes=pre_queue_minutes,
                admissions_per_minute=admissions_per_minute,
                admission_ms=max(1, round(admission_minutes * 60_000)),
                tickets_per_admission=tickets_per_admission,
                heartbeat_s=heartbeat_s,
            ),
        )
        return await self._view(event_id)

    async def delete(self, who: Principal, event_id: str) -> None:
        """The event is open to all again; the places and admissions are gone."""
        await self._owned(who, event_id)
        if not await self.queues.delete(event_id):
            raise NotFound("this event has no admission queue", code="queue_not_found")

    async def get(self, event_id: str) -> QueueView:
        return await self._view(event_id)

    async def figures(self, event_id: str) -> QueueFigures | None:
        """The queue's figures for the sales view; None without a queue."""
        info = await self.queues.info(event_id)
        if info is None:
            return None
        outflow = await self.queues.outflow(event_id)
        return QueueFigures(info, info.state, outflow)

    # -- the buyer -------------------------------------------------------------------

    async def join(self, who: Principal, event_id: str) -> Place:
        # No store read on the way in: a queue exists only for a stored event (configure
        # checks it), so the store is asked only to tell "no such event" from "no queue".
        # The read (a thread hop) made a join cost more than a hold through HTTP.
        try:
            return await self.queues.join(event_id, who.id)
        except QueueNotFound:
            await self._event(event_id)
            raise NotFound("this event has no admission queue", code="queue_not_found") from None

    async def me(self, who: Principal, event_id: str) -> Place:
        """The buyer's place; counts as a heartbeat (rate-limited per buyer and event)."""
        retry_after = await self.heartbeats.hit("queue_hb", f"{who.id}:{event_id}")
        if retry_after is not None:
            raise RateLimited(retry_after)
        try:
            places = await self.queues.places(event_id, [who.id])
        except QueueNotFound:
            raise NotFound("this event has no admission queue", code="queue_not_found") from None
        if places[0] is None:
            raise NotFound("you are not in this event's queue", code="not_in_queue")
        return places[0]

    async def leave(self, who: Principal, event_id: str) -> None:
        try:
            await self.queues.leave(event_id, who.id)
        except QueueNotFound:
            raise NotFound("this event has no admission queue", code="queue_not_found") from None
