"""The reservation engine: hold, confirm, cancel, expire, stock and arming.

Every state change is one Lua script (see ``lua/``); this module builds the key lists,
maps return codes to typed exceptions and decodes the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.asyncio import Redis

from engine import keys
from engine.errors import (
    EngineError,
    EventBusy,
    InvalidRequest,
    OrderExpired,
    OrderNotFound,
    refusal,
)
from engine.models import (
    CategorySpec,
    CategoryStock,
    EventStock,
    HoldResult,
    Order,
    decode_order,
    event_of_order,
    new_order_id,
)
from engine.scripts import Scripts

log = logging.getLogger(__name__)

RECENT_KEEP = 200  # a user's recent orders remembered for read-your-writes
RECENT_TTL_S = 3600


@dataclass(frozen=True)
class EngineConfig:
    hold_ttl_ms: int = 600_000
    max_per_order: int = 10
    low_stock_threshold: float = 0.1
    feed_maxlen: int = 10_000
    sweep_batch: int = 500
    batching: bool = True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (its caller has already failed on another)."""
    if not fut.cancelled():
        fut.exception()


def _reply(raw: Sequence[Any]) -> tuple[int, str]:
    return int(raw[0]), _text(raw[1])


class Engine:
    """Live inventory of every armed event, in one Redis (or Redis Cluster)."""

    def __init__(self, redis: Redis, config: EngineConfig | None = None) -> None:
        self.redis = redis
        self.config = config or EngineConfig()
        self.scripts = Scripts(redis)

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
    ) -> int:
        """Create (or re-arm) an event's live inventory. Returns categories newly armed."""
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

    async def remove_category(self, event_id: str, category_id: str) -> None:
        code, payload = await self._adjust(event_id, category_id, -1, 0, "")
        if code < 0:
            raise refusal(code, payload)

    async def _adjust(
        self, event_id: str, category_id: str, total: int, price: float, name: str
    ) -> tuple[int, str]:
        return _reply(
            await self.scripts.call(
                "adjust_category",
                [keys.inventory(event_id), keys.feed(event_id)],
                [event_id, category_id, total, price, name, self.config.feed_maxlen],
            )
        )

    async def set_state(
        self,
        event_id: str,
        state: str,
        changes: dict[str, Any] | None = None,
        *,
        low_stock_threshold: float | None = None,
        max_per_order: int | None = None,
    ) -> str:
        """Open, close or delete an event for sale; publishes ``event:update``."""
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
    ) -> HoldResult:
        """Reserve all items of one order atomically.

        ``order_id`` is the request id: retrying with the same one never holds twice.
        Quantities of a category named twice are added up. ``remember`` also records the
        order in the user's recent set (:meth:`note_user_order`) in the same round trip;
        a refused hold leaves an id there that resolves to nothing and is skipped.
        """
        self._check_id(event_id)
        merged: dict[str, int] = {}
        for category_id, quantity in items:
            if quantity < 1:
                raise InvalidRequest("quantities must be >= 1", category=category_id)
            merged[category_id] = merged.get(category_id, 0) + quantity
        if not merged:
            raise InvalidRequest("an order needs at least one ticket")
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
        ek = keys.hold_keys(event_id)
        hold_keys = [
            ek.inventory,
            ek.orders,
            ek.idempotency,
            ek.deadlines,
            keys.timer(event_id, order_id),
            ek.feed,
            ek.order_log,
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
        return HoldResult(decode_order(payload), created=code == 0)

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
    ) -> HoldResult:
        """Sell a held order. ``created`` is False when it was already confirmed with this
        transaction id (a retried confirm). A hold past its deadline is released at once
        and :class:`OrderExpired` raised."""
        event_id, ks = self._order_keys(order_id, timer=True)
        code, payload = _reply(
            await self._run(
                "confirm_order",
                ks,
                [
                    order_id,
                    user_id,
                    "1" if is_admin else "0",
                    payment_method,
                    transaction_id,
                    self.config.feed_maxlen,
                ],
            )
        )
        if code < 0:
            err = refusal(code, payload)
            if isinstance(err, OrderExpired):
                await self.expire(event_id, order_id)
            self._attach_order(err, payload)
            raise err
        return HoldResult(decode_order(payload), created=code == 0)

    async def cancel(self, order_id: str, user_id: str, *, is_admin: bool = False) -> HoldResult:
        """Cancel a held order; its stock returns at once. Idempotent."""
        _, ks = self._order_keys(order_id, timer=True)
        code, payload = _reply(
            await self._run(
                "cancel_order",
                ks,
                [order_id, user_id, "1" if is_admin else "0", self.config.feed_maxlen],
            )
        )
        if code < 0:
            err = refusal(code, payload)
            self._attach_order(err, payload)
            raise err
        return HoldResult(decode_order(payload), created=code == 0)

    @staticmethod
    def _attach_order(err: EngineError, payload: str) -> None:
        if payload.startswith("{"):
            err.details["order"] = decode_order(payload)

    async def expire(self, event_id: str, order_id: str) -> bool:
        """Release one due hold (idempotent). True when this call released it."""
        code, _ = _reply(
            await self._run(
                "expire_hold",
                [
                    keys.inventory(event_id),
                    keys.orders(event_id),
                    keys.deadlines(event_id),
                    keys.feed(event_id),
                    keys.order_log(event_id),
                ],
                [order_id, self.config.feed_maxlen],
            )
        )
        return code == 1

    async def sweep_event(self, event_id: str) -> int:
        """Release every due hold of one event, in bounded batches. Returns the count."""
        released = 0
        while True:
            raw = await self.scripts.call(
                "sweep_due",
                [
                    keys.inventory(event_id),
                    keys.orders(event_id),
                    keys.deadlines(event_id),
                    keys.feed(event_id),
                    keys.order_log(event_id),
                ],
                [self.config.sweep_batch, self.config.feed_maxlen],
            )
            released += int(raw[0])
            if not int(raw[1]):
                return released

    async def wait_replicated(self, order_id: str, replicas: int, timeout_ms: int) -> bool:
        """WAIT on the node that holds the order's event until ``replicas`` replicas have
        every write so far (CONFIRM_DURABILITY=replica)."""
        event_id = event_of_order(order_id)
        if event_id is None:
            raise OrderNotFound("order not found")
        args = ("WAIT", replicas, timeout_ms)
        if isinstance(self.redis, Redis):
            acked = await self.redis.execute_command(*args)  # type: ignore[no-untyped-call]
        else:
            node = self.redis.get_node_from_key(keys.orders(event_id))
            acked = await self.redis.execute_command(*args, target_nodes=node)
        return int(acked) >= replicas

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
        ids = [_text(x) for x in await self.redis.zrevrange(keys.user_orders(user_id), 0, -1)]
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
        return sorted(_text(x) for x in await self.redis.smembers(keys.EVENTS))

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
        """Drop an event's live keys (after it was deleted and its holds cancelled)."""
        await self.redis.srem(keys.EVENTS, event_id)
        for key in (
            keys.inventory(event_id),
            keys.idempotency(event_id),
            keys.deadlines(event_id),
        ):
            await self.redis.delete(key)

    @staticmethod
    def _check_id(value: str) -> None:
        if not keys.ID_RE.match(value):
            raise InvalidRequest(f"invalid id {value!r}")


def parse_inventory(event_id: str, raw: dict[Any, Any]) -> EventStock | None:
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    if "state" not in fields:
        return None
    categories = []
    for cid in msgspec.json.decode(fields.get("cats", "[]")):
        if f"t:{cid}" not in fields:
            continue
        categories.append(
            CategoryStock(
                id=cid,
                name=fields.get(f"n:{cid}", cid),
                price=float(fields.get(f"p:{cid}", 0)),
                total=int(fields[f"t:{cid}"]),
                available=int(fields[f"a:{cid}"]),
                held=int(fields[f"h:{cid}"]),
                sold=int(fields[f"s:{cid}"]),
            )
        )
    return EventStock(
        event_id=event_id,
        state=fields["state"],
        low_stock_threshold=float(fields.get("thr", 0)),
        max_per_order=int(fields.get("max", 0)),
        categories=categories,
    )
