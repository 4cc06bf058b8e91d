"""The reservation engine: hold, confirm, cancel, expire, stock and arming.

Every state change is one Lua script (see ``lua/``); this module builds the key lists,
maps return codes to typed exceptions and decodes the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine import keys
from engine.errors import (
    EngineError,
    EventBusy,
    IdempotencyKeyReused,
    InvalidRequest,
    NotReplicated,
    OrderExpired,
    OrderNotFound,
    OrderRetired,
    refusal,
)
from engine.models import (
    CategorySpec,
    CategoryStock,
    EventStock,
    HoldResult,
    Offer,
    Order,
    WaitlistEntry,
    decode_entry,
    decode_order,
    event_of_order,
    new_id,
    new_order_id,
)
from engine.scripts import Scripts
from engine.vocabulary import OrderStatus, text

log = logging.getLogger(__name__)

RECENT_KEEP = 200  # a user's recent orders remembered for read-your-writes
RECENT_TTL_S = 3600
RETIRE_CHUNK = 1000  # retired members per script call
WAITLISTS_KEEP = 50  # events a user's room follows for their waitlist entries, at most
WAITLIST_FOLLOW_S = 7 * 86_400  # ... for this long after they last joined one


@dataclass(frozen=True)
class EngineConfig:
    hold_ttl_ms: int = 600_000
    max_per_order: int = 10
    low_stock_threshold: float = 0.1
    feed_maxlen: int = 10_000
    sweep_batch: int = 500
    batching: bool = True
    idempotency_ttl_s: int = 86_400  # how long a user's Idempotency-Key is remembered
    order_retention_ms: int = 600_000  # a finished, stored order stays in Redis this long
    offer_ttl_ms: int = 300_000  # a waitlist offer's hold lifetime (WAITLIST_OFFER_MINUTES)
    hold_extensions: int = 1  # extensions per hold (HOLD_EXTENSIONS)
    hold_extension_ms: int = 300_000  # each (HOLD_EXTENSION_MINUTES)
    hold_max_total_ms: int = 1_200_000  # longest hold since creation (HOLD_MAX_TOTAL_MINUTES)


@dataclass(frozen=True)
class SweepResult:
    """One event's sweep: holds released, and the earliest deadline left in its due set
    (None when empty) with the server time the sweep ran at (both epoch ms)."""

    released: int
    next_deadline_ms: int | None
    now_ms: int


DeadlineWatcher = Callable[[str, int, int], None]


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (its caller has already failed on another)."""
    if not fut.cancelled():
        fut.exception()


def _reply(raw: Sequence[Any]) -> tuple[int, str]:
    return int(raw[0]), text(raw[1])


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


class Engine:
    """Live inventory of every armed event, in one Redis (or Redis Cluster)."""

    def __init__(self, redis: Redis, config: EngineConfig | None = None) -> None:
        self.redis = redis
        self.config = config or EngineConfig()
        self.scripts = Scripts(redis)
        self.deadline_watchers: list[DeadlineWatcher] = []

    def note_deadline(self, event_id: str, deadline_ms: int, now_ms: int) -> None:
        """Tell this process's watchers (the sweeper) that a hold of ``event_id`` is due at
        ``deadline_ms``, set by a script whose server clock read ``now_ms``. Called for
        every hold made here; a script that makes a nearer deadline (a waitlist offer)
        should call it too. Sync and cheap: a watcher only plans a wake-up."""
        for watch in self.deadline_watchers:
            watch(event_id, deadline_ms, now_ms)

    async def start(self) -> None:
        await self.scripts.load()

    async def _run(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        if self.config.batching:
            return await self.scripts.batched(name, keys_, args)
        return await self.scripts.call(name, keys_, args)

    # -- arming and adjusting --------------------------------------------------------

    async def arm_event(
        self,
        event_id: str,
        categories: Iterable[CategorySpec],
        *,
        on_sale: bool = True,
        low_stock_threshold: float | None = None,
        max_per_order: int | None = None,
        starts_at: int | None = None,
        max_per_buyer: int | None = None,
    ) -> int:
        """Create (or re-arm) an event's live inventory. Returns categories newly armed.

        ``starts_at`` is the event's date (epoch ms): from then on holds are refused
        (:class:`EventPast`), by the server clock; None keeps the armed date, if any.
        ``max_per_buyer`` caps a buyer's tickets in the event, held plus sold (None: no cap)."""
        self._check_id(event_id)
        cats = list(categories)
        args: list[Any] = [
            event_id,
            "open" if on_sale else "closed",
            low_stock_threshold
            if low_stock_threshold is not None
            else self.config.low_stock_threshold,
            max_per_order if max_per_order is not None else self.config.max_per_order,
            self.config.feed_maxlen,
            "" if starts_at is None else int(starts_at),
            max_per_buyer or 0,
            len(cats),
        ]
        for c in cats:
            self._check_id(c.id)
            args += [c.id, c.total, c.sold, c.price, c.name]
        code, payload = _reply(
            await self.scripts.call(
                "arm_event", [keys.inventory(event_id), keys.feed(event_id)], args
            )
        )
        if code < 0:
            raise refusal(code, payload)
        await self.redis.sadd(keys.EVENTS, event_id)
        return code

    async def adjust_category(
        self, event_id: str, category_id: str, total: int, *, price: float, name: str
    ) -> int:
        """Create or resize one category against live holds. Returns its available stock."""
        self._check_id(category_id)
        if total < 0:
            raise InvalidRequest("total must be >= 0")
        code, payload = await self._adjust(event_id, category_id, total, price, name)
        if code < 0:
            raise refusal(code, payload)
        return int(payload)

    def _slots(self, event_id: str) -> tuple[list[str], list[str]]:
        """Fresh order ids a releasing script may use for waitlist offers, and their timers."""
        ids = [new_order_id(event_id) for _ in range(keys.OFFER_SLOTS)]
        return ids, keys.offer_slots(event_id, ids)

    def _waitlist_keys(self, event_id: str) -> list[str]:
        return [keys.buyers(event_id), keys.waitlist(event_id), keys.waitlist_queue(event_id)]

    async def _offered(self, event_id: str, raw: Any, pending: Any = 0) -> list[Offer]:
        """After a releasing script: the offers it made reach their buyers' order lists
        and this process's sweeper; tickets it left set aside are offered on."""
        offers = [_offer(text(item)) for item in raw or ()]
        for _ in range(100):  # bounded: each round offers up to OFFER_SLOTS entries
            if not int(pending or 0):
                break
            ids, timers = self._slots(event_id)
            more = await self._run(
                "offer_waitlist",
                [
                    keys.inventory(event_id),
                    keys.orders(event_id),
                    keys.deadlines(event_id),
                    keys.feed(event_id),
                    keys.order_log(event_id),
                    *self._waitlist_keys(event_id),
                    *timers,
                ],
                [event_id, self.config.feed_maxlen, self.config.offer_ttl_ms, *ids],
            )
            offers += [_offer(text(item)) for item in more[0] or ()]
            pending = more[1]
        for offer in offers:
            created = offer.expires_at - self.config.offer_ttl_ms
            if self.deadline_watchers:
                self.note_deadline(event_id, offer.expires_at, created)
            await self._run(
                "remember_order",
                [keys.user_orders(offer.user_id)],
                [offer.order_id, int(time.time() * 1000), RECENT_KEEP, RECENT_TTL_S],
            )
        return offers

    async def remove_category(self, event_id: str, category_id: str) -> None:
        code, payload = await self._adjust(event_id, category_id, -1, 0, "")
        if code < 0:
            raise refusal(code, payload)

    async def _adjust(
        self, event_id: str, category_id: str, total: int, price: float, name: str
    ) -> tuple[int, str]:
        ids, timers = self._slots(event_id)
        raw = await self.scripts.call(
            "adjust_category",
            [
                keys.inventory(event_id),
                keys.feed(event_id),
                keys.orders(event_id),
                keys.deadlines(event_id),
                keys.order_log(event_id),
                *self._waitlist_keys(event_id),
                *timers,
            ],
            [
                event_id,
                category_id,
                total,
                price,
                name,
                self.config.feed_maxlen,
                self.config.offer_ttl_ms,
                *ids,
            ],
        )
        if len(raw) > 2:
            await self._offered(event_id, raw[2], raw[3])
        return _reply(raw)

    async def set_state(
        self,
        event_id: str,
        state: str,
        changes: dict[str, Any] | None = None,
        *,
        low_stock_threshold: float | None = None,
        max_per_order: int | None = None,
        starts_at: int | None = None,
        max_per_buyer: int | None = None,
    ) -> str:
        """Open, close or delete an event for sale, or move its date (``starts_at``,
        epoch ms), or set its buyer cap (``max_per_buyer``: 0 removes it, None keeps it);
        publishes ``event:update``."""
        if state not in ("open", "closed", "deleted"):
            raise InvalidRequest(f"unknown state {state}")
        code, payload = _reply(
            await self.scripts.call(
                "set_event_state",
                [keys.inventory(event_id), keys.feed(event_id)],
                [
                    event_id,
                    state,
                    msgspec.json.encode(changes or {}).decode(),
                    self.config.feed_maxlen,
                    "" if low_stock_threshold is None else low_stock_threshold,
                    "" if max_per_order is None else max_per_order,
                    "" if starts_at is None else int(starts_at),
                    "" if max_per_buyer is None else int(max_per_buyer),
                ],
            )
        )
        if code < 0:
            raise refusal(code, payload)
        return payload

    async def publish_event_update(self, event_id: str, changes: dict[str, Any]) -> None:
        """``event:update`` for changes that do not touch inventory (name, venue, ...)."""
        await self.redis.xadd(
            keys.feed(event_id),
            {
                "event": "event:update",
                "data": msgspec.json.encode({"eventoId": event_id, "cambios": changes}),
            },
            maxlen=self.config.feed_maxlen,
            approximate=True,
        )

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
        code, payload = _reply(raw)
        if remember and not self.config.batching and code >= 0:
            await self.note_user_order(decode_order(payload))
        if code < 0:
            raise refusal(code, payload)
        result = HoldResult(decode_order(payload), created=code == 0)
        if result.created and self.deadline_watchers:
            self.note_deadline(event_id, result.order.expires_at, result.order.created_at)
        if record:
            return await self._remember_key(record, fingerprint, result)
        return result

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
        code, recorded = _reply(
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

    def _order_keys(self, order_id: str, *, timer: bool) -> tuple[str, list[str]]:
        event_id = event_of_order(order_id)
        if event_id is None:
            raise OrderNotFound("order not found")
        ks = [keys.inventory(event_id), keys.orders(event_id), keys.deadlines(event_id)]
        if timer:
            ks.append(keys.timer(event_id, order_id))
        ks += [keys.feed(event_id), keys.order_log(event_id)]
        return event_id, ks

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
        code, payload = _reply(raw)
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
        code, payload = _reply(raw)
        if code < 0:
            err = refusal(code, payload)
            self._attach_order(err, payload)
            raise err
        if len(raw) > 2:
            await self._offered(event_id, raw[2], raw[3])
        return HoldResult(decode_order(payload), created=code == 0)

    @staticmethod
    def _attach_order(err: EngineError, payload: str) -> None:
        if payload.startswith("{"):
            err.details["order"] = decode_order(payload)

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

    # -- buyer protection: hold extension, buyer counts, waitlist ----------------------------

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
        code, payload = _reply(raw)
        if code < 0:
            raise refusal(code, payload)
        order = decode_order(payload)
        if self.deadline_watchers:
            self.note_deadline(event_id, order.expires_at, order.updated_at)
        return order

    async def buyer_counts(self, event_id: str) -> dict[str, int]:
        """Tickets each buyer holds plus has bought in the event."""
        raw = await self.redis.hgetall(keys.buyers(event_id))
        return {text(k): int(v) for k, v in raw.items()}

    async def restore_buyer_counts(self, event_id: str, counts: dict[str, int]) -> None:
        """Set the event's buyer counts (re-arming after a Redis loss: from the stored
        confirmed orders, the only ones that survive it)."""
        key = keys.buyers(event_id)
        await self.redis.delete(key)
        if counts:
            await self.redis.hset(key, mapping={u: n for u, n in counts.items() if n > 0})

    async def join_waitlist(
        self, event_id: str, category_id: str, user_id: str, quantity: int
    ) -> WaitlistEntry:
        """Put the user on a sold-out category's waitlist (lua/join_waitlist-4.lua)."""
        self._check_id(event_id)
        self._check_id(category_id)
        raw = await self._run(
            "join_waitlist",
            [
                keys.inventory(event_id),
                keys.waitlist(event_id),
                keys.waitlist_queue(event_id),
                keys.buyers(event_id),
            ],
            [event_id, category_id, user_id, quantity, new_id()],
        )
        code, payload = _reply(raw)
        if code < 0:
            raise refusal(code, payload)
        # The user's room follows this event's feed from now on (waitlist:offer).
        joined = keys.user_waitlists(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(joined, {event_id: int(time.time() * 1000)})
        pipe.zremrangebyrank(joined, 0, -(WAITLISTS_KEEP + 1))
        pipe.expire(joined, WAITLIST_FOLLOW_S)
        await pipe.execute()
        return decode_entry(payload, int(raw[2]))

    async def leave_waitlist(self, event_id: str, category_id: str, user_id: str) -> WaitlistEntry:
        """Take the user off a category's waitlist; an offer out is cancelled and its
        tickets go to the next entries (lua/leave_waitlist-13.lua)."""
        self._check_id(event_id)
        self._check_id(category_id)
        offer_id = ""
        for _ in range(3):  # the offer read may be stale once: the script says which it is
            ids, timers = self._slots(event_id)
            raw = await self._run(
                "leave_waitlist",
                [
                    keys.inventory(event_id),
                    keys.orders(event_id),
                    keys.deadlines(event_id),
                    keys.feed(event_id),
                    keys.order_log(event_id),
                    *self._waitlist_keys(event_id),
                    keys.timer(event_id, offer_id or "none"),
                    *timers,
                ],
                [
                    event_id,
                    category_id,
                    user_id,
                    offer_id,
                    self.config.feed_maxlen,
                    self.config.offer_ttl_ms,
                    *ids,
                ],
            )
            code, payload = _reply(raw)
            if code == 3:
                offer_id = payload
                continue
            if code < 0:
                raise refusal(code, payload)
            await self._offered(event_id, raw[2], raw[3])
            return decode_entry(payload)
        raise EventBusy("the waitlist entry keeps changing; retry")

    async def waitlist_entries(self, event_id: str, user_id: str) -> list[WaitlistEntry]:
        """The user's latest entry in each category of the event, with its place in line."""
        stock = await self.stock(event_id)
        if stock is None:
            return []
        wl = keys.waitlist(event_id)
        cats = [c.id for c in stock.categories]
        if not cats:
            return []
        ids = await self.redis.hmget(wl, [f"u:{user_id}:{c}" for c in cats])
        found = [text(i) for i in ids if i is not None]
        if not found:
            return []
        raws = [r for r in await self.redis.hmget(wl, [f"e:{i}" for i in found]) if r]
        entries = [decode_entry(r) for r in raws]
        pipe = self.redis.pipeline(transaction=False)
        waiting = []
        for entry, raw in zip(entries, raws, strict=True):
            if entry.status == "ESPERANDO":
                member = _Member.decode(raw).m  # its place in the queue: "<cat>:<seq>:<id>"
                pipe.zlexcount(
                    keys.waitlist_queue(event_id), f"[{entry.category_id}:", f"({member}"
                )
                waiting.append(entry)
        for entry, ahead in zip(waiting, await pipe.execute() if waiting else [], strict=True):
            entry.position = int(ahead) + 1
        return entries

    # -- retention -----------------------------------------------------------------------

    async def retire_orders(self, event_id: str, orders: Iterable[tuple[str, int]]) -> int:
        """Mark ``(order id, version)`` pairs of one event as stored by the writer: once
        ``order_retention_ms`` has passed, :meth:`prune_event` removes each from Redis if it
        is still finished at that version. Returns how many were newly marked."""
        members = [f"{order_id}:{version}" for order_id, version in orders]
        added = 0
        for start in range(0, len(members), RETIRE_CHUNK):
            chunk = members[start : start + RETIRE_CHUNK]
            added += int(await self.scripts.call("retire_orders", [keys.retired(event_id)], chunk))
        return added

    async def retire_finished(self, orders: Iterable[Order]) -> int:
        """:meth:`retire_orders` for the finished orders (CONFIRMED, EXPIRED, CANCELLED)
        among ``orders``, whatever their events; live holds are left alone."""
        by_event: dict[str, list[tuple[str, int]]] = {}
        for order in orders:
            if order.status != OrderStatus.RESERVED:
                by_event.setdefault(order.event_id, []).append((order.id, order.version))
        added = await asyncio.gather(*(self.retire_orders(e, o) for e, o in by_event.items()))
        return sum(added)

    async def prune_event(self, event_id: str) -> int:
        """Remove the event's retired orders whose retention window has passed, in bounded
        batches (reads then fall back to the store). Returns how many left Redis."""
        pruned = 0
        while True:
            raw = await self.scripts.call(
                "prune_orders",
                [keys.orders(event_id), keys.idempotency(event_id), keys.retired(event_id)],
                [self.config.order_retention_ms, self.config.sweep_batch],
            )
            pruned += int(raw[0])
            if not int(raw[1]):
                return pruned

    async def get_order(self, order_id: str) -> Order | None:
        event_id = event_of_order(order_id)
        if event_id is None:
            return None
        raw = await self.redis.hget(keys.orders(event_id), order_id)
        return decode_order(raw) if raw else None

    async def orders_of_event(self, event_id: str) -> list[Order]:
        """Every order Redis holds for an event (audit, admin; not a hot path)."""
        out: list[Order] = []
        async for _, raw in self.redis.hscan_iter(keys.orders(event_id), count=1000):
            out.append(decode_order(raw))
        return out

    async def note_user_order(
        self, order: Order, keep: int = RECENT_KEEP, ttl_s: int = RECENT_TTL_S
    ) -> None:
        """Remember a user's new order for ``ttl_s`` so their order list shows it before
        the writer has persisted it (read-your-writes)."""
        await self._run(
            "remember_order",
            [keys.user_orders(order.user_id)],
            [order.id, order.created_at, keep, ttl_s],
        )

    async def recent_user_orders(self, user_id: str) -> list[Order]:
        """The user's recent orders, as Redis holds them now, newest first."""
        ids = [text(x) for x in await self.redis.zrevrange(keys.user_orders(user_id), 0, -1)]
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        wanted = [(oid, event_of_order(oid)) for oid in ids]
        for oid, event_id in wanted:
            if event_id is not None:
                pipe.hget(keys.orders(event_id), oid)
        found = await pipe.execute()
        return [decode_order(raw) for raw in found if raw]

    # -- stock -------------------------------------------------------------------------

    async def event_ids(self) -> list[str]:
        return sorted(text(x) for x in await self.redis.smembers(keys.EVENTS))

    async def stock(self, event_id: str) -> EventStock | None:
        raw = await self.redis.hgetall(keys.inventory(event_id))
        return parse_inventory(event_id, raw)

    async def stocks(self, event_ids: Sequence[str]) -> dict[str, EventStock]:
        """Stock of many events in one pipelined round trip (event lists)."""
        if not event_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.hgetall(keys.inventory(event_id))
        out: dict[str, EventStock] = {}
        for event_id, raw in zip(event_ids, await pipe.execute(), strict=True):
            stock = parse_inventory(event_id, raw)
            if stock is not None:
                out[event_id] = stock
        return out

    @contextlib.asynccontextmanager
    async def event_lock(
        self, event_id: str, ttl_ms: int = 10_000, wait_s: float = 10.0
    ) -> AsyncIterator[None]:
        """Hold the event's edit lock (across every process) for a read-modify-write of
        its stored document; released only by its holder, and by its TTL if that dies."""
        key = keys.edit_lock(event_id)
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.005
        while not await self.redis.set(key, token, nx=True, px=ttl_ms):
            if loop.time() > deadline:
                raise EventBusy("the event is being edited; retry")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            await self.scripts.call("release_lock", [key], [token])

    async def live_holds(self, event_ids: Sequence[str]) -> int:
        """How many holds are live (RESERVED, not yet released) across these events."""
        if not event_ids:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.zcard(keys.deadlines(event_id))
        return sum(int(n) for n in await pipe.execute())

    async def forget_event(self, event_id: str) -> None:
        """Drop an event's live keys (after it was deleted and its holds cancelled).

        It leaves ``keys.EVENTS`` first, so the sweeper, the writer's list of logs and a
        re-arm no longer see it. Its orders and feed stay readable for the retention
        window (the last ``event:update`` reaches the rooms), then expire. Its order log
        stays: the writer drains it and trims it before it lets go of it."""
        await self.redis.srem(keys.EVENTS, event_id)
        for key in (
            keys.inventory(event_id),
            keys.idempotency(event_id),
            keys.deadlines(event_id),
            keys.retired(event_id),
            keys.buyers(event_id),
            keys.waitlist(event_id),
            keys.waitlist_queue(event_id),
        ):
            await self.redis.delete(key)
        linger_s = max(1, self.config.order_retention_ms // 1000)
        for key in (keys.orders(event_id), keys.feed(event_id)):
            await self.redis.expire(key, linger_s)

    @staticmethod
    def _check_id(value: str) -> None:
        if not keys.ID_RE.match(value):
            raise InvalidRequest(f"invalid id {value!r}")


def parse_inventory(event_id: str, raw: dict[Any, Any]) -> EventStock | None:
    if not raw:
        return None
    fields = {text(k): text(v) for k, v in raw.items()}
    if "state" not in fields:
        return None
    categories = []
    for cid in msgspec.json.decode(fields.get("cats", "[]")):
        if f"t:{cid}" not in fields:
            continue
        set_aside = int(fields.get(f"r:{cid}", 0))
        categories.append(
            CategoryStock(
                id=cid,
                name=fields.get(f"n:{cid}", cid),
                price=float(fields.get(f"p:{cid}", 0)),
                total=int(fields[f"t:{cid}"]),
                available=int(fields[f"a:{cid}"]) - set_aside,
                held=int(fields[f"h:{cid}"]),
                sold=int(fields[f"s:{cid}"]),
                set_aside=set_aside,
                waiting=int(fields.get(f"w:{cid}", 0)),
            )
        )
    return EventStock(
        event_id=event_id,
        state=fields["state"],
        low_stock_threshold=float(fields.get("thr", 0)),
        max_per_order=int(fields.get("max", 0)),
        categories=categories,
        max_per_buyer=int(fields.get("mpb", 0)) or None,
    )


class _QueueMember(msgspec.Struct):
    m: str = ""


_Member = msgspec.json.Decoder(_QueueMember)


def _offer(item: str) -> Offer:
    """One "<orderId> <userId> <deadline ms>" a releasing script returned."""
    order_id, user_id, deadline = item.split(" ")
    return Offer(order_id, user_id, int(deadline))
