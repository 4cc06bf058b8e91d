"""Arming and adjusting an event's live inventory, its sale state, stock reads
(:func:`parse_inventory`), buyer counts, the event's edit lock, live-hold counts and
dropping a deleted event's keys: the :class:`InventoryMixin` part of the Engine."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import msgspec

from engine import keys
from engine.base import EngineBase, reply
from engine.errors import EventBusy, InvalidRequest, refusal
from engine.models import CategorySpec, CategoryStock, EventStock
from engine.vocabulary import text


class InventoryMixin(EngineBase):
    """An event's live inventory: arming, resizing, sale state, stock, locks."""

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
        code, payload = reply(
            await self.scripts.call(
                "arm_event", [keys.inventory(event_id), keys.feed(event_id)], args
            )
        )
        if code < 0:
            raise refusal(code, payload)
        await self.redis.sadd(keys.EVENTS, event_id)
        return code

    async def adjust_category(
        self,
        event_id: str,
        category_id: str,
        total: int,
        *,
        price: float,
        name: str,
        benefits: Sequence[str] = (),
    ) -> int:
        """Create, resize, rename or reprice one category against live holds; publishes
        ``event:update`` with the category (``benefits`` go in it only: Redis keeps none),
        then its stock when that moved. Returns its available stock."""
        self._check_id(category_id)
        if total < 0:
            raise InvalidRequest("total must be >= 0")
        code, payload = await self._adjust(
            event_id, category_id, total, price, name, msgspec.json.encode(list(benefits))
        )
        if code < 0:
            raise refusal(code, payload)
        return int(payload)

    async def remove_category(self, event_id: str, category_id: str) -> None:
        """Remove a category nobody holds or bought; its waitlist closes with it (each
        waiter told, ``waitlist:closed``) and the first call publishes ``event:update``
        ``{categoriaEliminada}``. The script closes a bounded batch of entries per call
        and says how many are left: it is called again until none is (each call
        O(small), the category gone from the first)."""
        self._check_id(category_id)
        code, payload = await self._adjust(event_id, category_id, -1, 0, "")
        if code < 0:
            raise refusal(code, payload)
        while int(payload or 0) > 0:
            code, payload = await self._adjust(event_id, category_id, -1, 0, "")
            if code < 0:  # -4: another call closed the rest meanwhile
                break

    async def _adjust(
        self,
        event_id: str,
        category_id: str,
        total: int,
        price: float,
        name: str,
        benefits: bytes = b"[]",
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
                benefits,
            ],
        )
        if len(raw) > 2:
            await self._offered(event_id, raw[2], raw[3])
        return reply(raw)

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
        code, payload = reply(
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
