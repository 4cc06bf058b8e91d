"""A hold's life after it is made: confirm (with the replica wait), cancel, expire one,
sweep an event's due holds, extend a deadline: the :class:`HoldLifecycleMixin` part of the
Engine."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from engine import keys
from engine.base import EngineBase, reply
from engine.errors import NotReplicated, OrderExpired, refusal
from engine.models import HoldResult, Order, decode_order


@dataclass(frozen=True)
class SweepResult:
    """One event's sweep: holds released, and the earliest deadline left in its due set
    (None when empty) with the server time the sweep ran at (both epoch ms)."""

    released: int
    next_deadline_ms: int | None
    now_ms: int


class HoldLifecycleMixin(EngineBase):
    """What becomes of a hold: sold, cancelled, expired, extended."""

    async def confirm(
        self,
        order_id: str,
        user_id: str,
        *,
        payment_method: str,
        transaction_id: str,
        is_admin: bool = False,
        replicas: int = 0,
        replica_timeout_ms: int = 0,
    ) -> HoldResult:
        """Sell a held order. ``created`` is False when it was already confirmed with this
        transaction id (a retried confirm). A hold past its deadline is released at once
        and :class:`OrderExpired` raised.

        With ``replicas`` (CONFIRM_DURABILITY=replica), WAIT follows the confirm on the
        connection that ran it, for up to ``replica_timeout_ms``; fewer replicas than that
        acknowledging raises :class:`NotReplicated`: the order is confirmed on the primary,
        and the same confirm retried is safe (it confirms nothing twice and waits again)."""
        event_id, ks = self._order_keys(order_id, timer=True)
        ks.append(keys.waitlist(event_id))
        args: list[Any] = [
            order_id,
            user_id,
            "1" if is_admin else "0",
            payment_method,
            transaction_id,
            self.config.feed_maxlen,
        ]
        acked = 0
        if replicas > 0:
            raw, acked = await self.scripts.call_then_wait(
                "confirm_order", ks, args, replicas, replica_timeout_ms
            )
        else:
            raw = await self._run("confirm_order", ks, args)
        code, payload = reply(raw)
        if code < 0:
            err = refusal(code, payload)
            if isinstance(err, OrderExpired):
                await self.expire(event_id, order_id)
            self._attach_order(err, payload)
            raise err
        result = HoldResult(decode_order(payload), created=code == 0)
        if acked < replicas:
            raise NotReplicated(
                f"{acked} of {replicas} replicas acknowledged the confirmation",
                order=result.order,
                acknowledged=acked,
            )
        return result

    async def cancel(self, order_id: str, user_id: str, *, is_admin: bool = False) -> HoldResult:
        """Cancel a held order; its stock returns at once. Idempotent."""
        event_id, ks = self._order_keys(order_id, timer=True)
        ids, timers = self._slots(event_id)
        raw = await self._run(
            "cancel_order",
            [*ks, *self._waitlist_keys(event_id), *timers],
            [
                order_id,
                user_id,
                "1" if is_admin else "0",
                self.config.feed_maxlen,
                event_id,
                self.config.offer_ttl_ms,
                *ids,
            ],
        )
        code, payload = reply(raw)
        if code < 0:
            err = refusal(code, payload)
            self._attach_order(err, payload)
            raise err
        if len(raw) > 2:
            await self._offered(event_id, raw[2], raw[3])
        return HoldResult(decode_order(payload), created=code == 0)

    async def expire(self, event_id: str, order_id: str) -> bool:
        """Release one due hold (idempotent). True when this call released it."""
        ids, timers = self._slots(event_id)
        raw = await self._run(
            "expire_hold",
            [
                keys.inventory(event_id),
                keys.orders(event_id),
                keys.deadlines(event_id),
                keys.feed(event_id),
                keys.order_log(event_id),
                *self._waitlist_keys(event_id),
                *timers,
            ],
            [order_id, self.config.feed_maxlen, event_id, self.config.offer_ttl_ms, *ids],
        )
        code = int(raw[0])
        if len(raw) > 2 and (raw[2] or int(raw[3])):
            await self._offered(event_id, raw[2], raw[3])
        return code == 1

    async def sweep_event(self, event_id: str) -> int:
        """Release every due hold of one event, in bounded batches. Returns the count."""
        return (await self.sweep(event_id)).released

    async def sweep(self, event_id: str) -> SweepResult:
        """:meth:`sweep_event`, also returning the event's next deadline (no extra call)."""
        released = 0
        while True:
            ids, timers = self._slots(event_id)
            raw = await self.scripts.call(
                "sweep_due",
                [
                    keys.inventory(event_id),
                    keys.orders(event_id),
                    keys.deadlines(event_id),
                    keys.feed(event_id),
                    keys.order_log(event_id),
                    *self._waitlist_keys(event_id),
                    *timers,
                ],
                [
                    self.config.sweep_batch,
                    self.config.feed_maxlen,
                    event_id,
                    self.config.offer_ttl_ms,
                    *ids,
                ],
            )
            released += int(raw[0])
            if len(raw) > 4 and raw[4]:
                await self._offered(event_id, raw[4])
            if not int(raw[1]):
                nxt = int(raw[2]) if len(raw) > 2 else -1
                now = int(raw[3]) if len(raw) > 3 else int(time.time() * 1000)
                return SweepResult(released, nxt if nxt >= 0 else None, now)

    # -- buyer protection: hold extension -------------------------------------------------

    async def extend(self, order_id: str, user_id: str) -> Order:
        """Move a held order's deadline by ``hold_extension_ms`` (capped: see
        lua/extend_hold-7.lua); :class:`ExtensionRefused` with its ``reason`` otherwise."""
        event_id, ks = self._order_keys(order_id, timer=True)
        raw = await self._run(
            "extend_hold",
            [*ks, keys.queue_waiting(event_id)],
            [
                order_id,
                user_id,
                self.config.hold_extension_ms,
                self.config.hold_extensions,
                self.config.hold_max_total_ms,
                self.config.feed_maxlen,
            ],
        )
        code, payload = reply(raw)
        if code < 0:
            raise refusal(code, payload)
        order = decode_order(payload)
        if self.deadline_watchers:
            self.note_deadline(event_id, order.expires_at, order.updated_at)
        return order
