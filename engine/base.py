"""What every part of the :class:`~engine.core.Engine` shares: its settings
(:class:`EngineConfig`), the connection and its scripts, running a script (batched or
not), the deadline watchers, the key lists of an order's scripts, and handing out the
waitlist offers a releasing script (cancel, expire, sweep, a resize, leaving a waitlist)
made.

The Engine is composed of mixins on :class:`EngineBase`, one per job: ``inventory``
(arming, stock, locks), ``lifecycle`` (confirm, cancel, expire, sweep, extend),
``waitlist``, ``retention`` (retire, prune) and ``orders`` (order reads); the hold itself
is ``core``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import EngineError, InvalidRequest, OrderNotFound
from engine.models import Offer, decode_order, event_of_order, new_order_id
from engine.scripts import Scripts
from engine.vocabulary import text

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
    idempotency_ttl_s: int = 86_400  # how long a user's Idempotency-Key is remembered
    order_retention_ms: int = 600_000  # a finished, stored order stays in Redis this long
    offer_ttl_ms: int = 300_000  # a waitlist offer's hold lifetime (WAITLIST_OFFER_MINUTES)
    hold_extensions: int = 1  # extensions per hold (HOLD_EXTENSIONS)
    hold_extension_ms: int = 300_000  # each (HOLD_EXTENSION_MINUTES)
    hold_max_total_ms: int = 1_200_000  # longest hold since creation (HOLD_MAX_TOTAL_MINUTES)


DeadlineWatcher = Callable[[str, int, int], None]


def reply(raw: Sequence[Any]) -> tuple[int, str]:
    return int(raw[0]), text(raw[1])


class EngineBase:
    """The state and helpers the Engine's parts share (see the module docstring)."""

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

    def _order_keys(self, order_id: str, *, timer: bool) -> tuple[str, list[str]]:
        event_id = event_of_order(order_id)
        if event_id is None:
            raise OrderNotFound("order not found")
        ks = [keys.inventory(event_id), keys.orders(event_id), keys.deadlines(event_id)]
        if timer:
            ks.append(keys.timer(event_id, order_id))
        ks += [keys.feed(event_id), keys.order_log(event_id)]
        return event_id, ks

    @staticmethod
    def _attach_order(err: EngineError, payload: str) -> None:
        if payload.startswith("{"):
            err.details["order"] = decode_order(payload)

    @staticmethod
    def _check_id(value: str) -> None:
        if not keys.ID_RE.match(value):
            raise InvalidRequest(f"invalid id {value!r}")


def _offer(item: str) -> Offer:
    """One "<orderId> <userId> <deadline ms>" a releasing script returned."""
    order_id, user_id, deadline = item.split(" ")
    return Offer(order_id, user_id, int(deadline))
