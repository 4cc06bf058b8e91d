"""The reservation engine: hold, confirm, cancel, expire, stock and arming.

Every state change is one Lua script (see ``lua/``); the Engine builds the key lists, maps
return codes to typed exceptions and decodes the results. :class:`Engine` is composed of
one part per job (see :mod:`engine.base`): this module keeps the hold and its
Idempotency-Key, the rate-limit counter and the writer's retire hook, and re-exports the
names callers import from here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import keys
from engine.base import (
    RECENT_KEEP,
    RECENT_TTL_S,
    DeadlineWatcher,
    EngineConfig,
    reply,
)
from engine.errors import IdempotencyKeyReused, InvalidRequest, OrderRetired, refusal
from engine.inventory import InventoryMixin, parse_inventory
from engine.lifecycle import HoldLifecycleMixin, SweepResult
from engine.models import HoldResult, Order, decode_order, new_order_id
from engine.orders import OrderReadsMixin
from engine.retention import RetentionMixin
from engine.scripts import RedisBusy
from engine.vocabulary import text
from engine.waitlist import WaitlistMixin

__all__ = [
    "DeadlineWatcher",
    "Engine",
    "EngineConfig",
    "SweepResult",
    "parse_inventory",
    "request_fingerprint",
    "retire_persisted",
]

log = logging.getLogger(__name__)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (its caller has already failed on another)."""
    if not fut.cancelled():
        fut.exception()


def request_fingerprint(event_id: str, items: dict[str, int]) -> str:
    """What an Idempotency-Key's request asked for: the event and its tickets, in any
    order (quantities of a category already added up)."""
    asked = ",".join(f"{c}={q}" for c, q in sorted(items.items()))
    return hashlib.blake2b(f"{event_id}|{asked}".encode(), digest_size=12).hexdigest()


async def retire_persisted(redis: Redis, orders: Iterable[Order]) -> int:
    """The writer's hook, once the store acknowledged ``orders`` and before it acknowledges
    their entries: the finished ones start their retention window
    (:meth:`Engine.retire_finished`). A writer that dies in between retires them again on
    redelivery (the first time is kept). A Redis refusal (``-OOM``: a full Redis) is logged
    and skipped, never raised: acknowledging and trimming the log is what frees memory
    then; orders not retired merely stay in Redis."""
    try:
        return await Engine(redis).retire_finished(orders)
    except ResponseError as e:
        log.warning("could not retire stored orders (%s); they stay in Redis", e)
        return 0


class Engine(HoldLifecycleMixin, WaitlistMixin, InventoryMixin, RetentionMixin, OrderReadsMixin):
    """Live inventory of every armed event, in one Redis (or Redis Cluster)."""

    # -- rate limits -------------------------------------------------------------------

    async def count_hit(self, scope: str, subject: str, window: int, ttl_s: int = 120) -> int:
        """Count one request of ``subject`` in fixed window ``window`` of ``scope``; the
        count so far. Batched with concurrent script calls: a limited endpoint such as
        the hold adds no round trip of its own (redis-py's INCR + EXPIRE pipeline cost
        ~50-190 us of worker CPU per hold)."""
        return int(await self._run("count_hit", [keys.rate_limit(scope, subject, window)], [ttl_s]))

    # -- orders ------------------------------------------------------------------------

    async def hold(
        self,
        event_id: str,
        user_id: str,
        items: Iterable[tuple[str, int]],
        *,
        idempotency_key: str | None = None,
        order_id: str | None = None,
        remember: bool = False,
        admission_token: str | None = None,
    ) -> HoldResult:
        """Reserve all items of one order atomically.

        While the event has an admission queue the hold needs ``admission_token`` (the
        buyer's unused admission), which the hold script consumes in the same step.

        ``order_id`` is the request id: retrying with the same one never holds twice.
        Quantities of a category named twice are added up. ``remember`` also records the
        order in the user's recent set (:meth:`note_user_order`) in the same round trip;
        a refused hold leaves an id there that resolves to nothing and is skipped.

        An ``idempotency_key`` is the user's, across events (the IETF Idempotency-Key
        draft): the same key with the same request (event and tickets) returns the first
        order, with another request raises :class:`IdempotencyKeyReused`, for
        ``idempotency_ttl_s``. The user's record of the key lives in the user's slot and
        the hold in the event's, and a script touches one slot, so the record is read
        before the hold script and written (SET NX) after it succeeded. That is safe:

        * the same event is also checked inside the hold script (its idempotency hash),
          so concurrent retries there make one order, and other tickets are refused;
        * the one window, two events held at once with the same key by the same user,
          is closed: both holds may succeed but only one record is written, and the
          loser cancels its own hold (its stock returns at once, a CANCELLED order is
          logged) and raises :class:`IdempotencyKeyReused`;
        * a crash between the hold and the record leaves the key unrecorded: only the
          event's own check then applies (until a replay of it records the key again).

        A replay of an order that has since left Redis (finished, stored and past the
        retention window) raises :class:`OrderRetired`: the store has it.
        """
        self._check_id(event_id)
        merged: dict[str, int] = {}
        for category_id, quantity in items:
            if quantity < 1:
                raise InvalidRequest("quantities must be >= 1", category=category_id)
            merged[category_id] = merged.get(category_id, 0) + quantity
        if not merged:
            raise InvalidRequest("an order needs at least one ticket")
        record = fingerprint = ""
        if idempotency_key:
            record = keys.user_idempotency(user_id, idempotency_key)
            fingerprint = request_fingerprint(event_id, merged)
            replay = await self._recall_key(record, fingerprint, user_id)
            if replay is not None:
                return replay
        order_id = order_id or new_order_id(event_id)
        idem_field = f"{user_id}:{idempotency_key}" if idempotency_key else ""
        args: list[Any] = [
            event_id,
            order_id,
            user_id,
            idem_field,
            self.config.hold_ttl_ms,
            self.config.feed_maxlen,
            len(merged),
        ]
        for category_id, quantity in merged.items():
            args += [category_id, quantity]
        args.append(admission_token or "")
        ek = keys.hold_keys(event_id)
        qk = keys.queue_keys(event_id)
        hold_keys = [
            ek.inventory,
            ek.orders,
            ek.idempotency,
            ek.deadlines,
            keys.timer(event_id, order_id),
            ek.feed,
            ek.order_log,
            ek.buyers,
            qk.queue,
            qk.admissions,
        ]
        if remember and self.config.batching:
            held = self.scripts.batched("hold_tickets", hold_keys, args)
            noted = self.scripts.batched(
                "remember_order",
                [keys.user_orders(user_id)],
                [order_id, int(time.time() * 1000), RECENT_KEEP, RECENT_TTL_S],
            )
            # Both are queued for the same round trip; awaiting them in turn is cheaper
            # than asyncio.gather's extra future and callbacks.
            try:
                raw = await held
            except BaseException:
                noted.add_done_callback(_retrieve)
                raise
            await noted
        else:
            raw = await self._run("hold_tickets", hold_keys, args)
        code, payload = reply(raw)
        if remember and not self.config.batching and code >= 0:
            await self.note_user_order(decode_order(payload))
        if code < 0:
            if remember and self.config.batching:
                self._forget_remembered(user_id, order_id)
            raise refusal(code, payload)
        result = HoldResult(decode_order(payload), created=code == 0)
        if remember and self.config.batching and result.order.id != order_id:
            self._forget_remembered(user_id, order_id)  # a replay: the id went unused
        if result.created and self.deadline_watchers:
            self.note_deadline(event_id, result.order.expires_at, result.order.created_at)
        if record:
            return await self._remember_key(record, fingerprint, result)
        return result

    def _forget_remembered(self, user_id: str, order_id: str) -> None:
        """Take back an id the hold remembered in its round trip but made no order under
        (refused, or a replay): stray ids filled the buyer's recent orders (one per refused
        attempt, up to the 200 kept), and every order list and live order look-up read them.
        Queued with the next batch, not awaited: the answer does not wait for it, and a
        failure leaves a stray id behind, which the readers skip."""
        try:
            forgot = self.scripts.batched("forget_order", [keys.user_orders(user_id)], [order_id])
        except RedisBusy:  # too much waits for Redis already: the refusal stands alone
            return
        forgot.add_done_callback(_retrieve)

    async def key_in_use(self, event_id: str, user_id: str, idempotency_key: str) -> bool:
        """Whether a hold with ``idempotency_key`` could be a replay: the user's record of
        the key (any event) or an order of this event under it. Both reads share one round
        trip. A keyed hold refused as sold out without the hold script (the stock gate)
        asks first, so that a replay is answered by :meth:`hold`, never refused."""
        self._check_id(event_id)
        reads = [
            ("recall_idempotency", [keys.user_idempotency(user_id, idempotency_key)], []),
            ("idempotency_held", [keys.idempotency(event_id)], [f"{user_id}:{idempotency_key}"]),
        ]
        if self.config.batching:
            found = await asyncio.gather(*(self.scripts.batched(n, k, a) for n, k, a in reads))
        else:
            found = [await self.scripts.call(n, k, a) for n, k, a in reads]
        return bool(found[0]) or bool(found[1])

    async def _recall_key(self, record: str, fingerprint: str, user_id: str) -> HoldResult | None:
        """The first order of a recorded Idempotency-Key used with the same request; None
        when the key is not recorded."""
        raw = await self._run("recall_idempotency", [record], [])
        if not raw:
            return None
        recorded, _, order_id = text(raw).partition(" ")
        if recorded != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request"
            )
        order = await self.get_order(order_id)
        if order is None or order.user_id != user_id:
            raise OrderRetired("the order is no longer live", order_id=order_id)
        return HoldResult(order, created=False)

    async def _remember_key(self, record: str, fingerprint: str, result: HoldResult) -> HoldResult:
        """Record the key after its hold (see :meth:`hold`); a hold that lost the record
        to a concurrent one on another event is cancelled."""
        order = result.order
        mine = f"{fingerprint} {order.id}"
        code, recorded = reply(
            await self._run("remember_idempotency", [record], [mine, self.config.idempotency_ttl_s])
        )
        if code == 0 or recorded == mine or not result.created:
            return result
        await self.cancel(order.id, order.user_id)
        log.info("idempotency key reused on two events at once; cancelled %s", order.id)
        if recorded.partition(" ")[0] == fingerprint:
            replay = await self._recall_key(record, fingerprint, order.user_id)
            if replay is not None:
                return replay
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
