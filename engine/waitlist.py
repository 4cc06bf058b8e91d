"""Waitlists of sold-out categories: joining, leaving (an offer out is cancelled and its
tickets go on to the next entries) and a user's entries with their place in line: the
:class:`WaitlistMixin` part of the Engine. Offers themselves are made by the releasing
scripts (see :meth:`EngineBase._offered`)."""

from __future__ import annotations

import time

import msgspec

from engine import keys
from engine.base import reply
from engine.errors import EventBusy, refusal
from engine.inventory import InventoryMixin
from engine.models import WaitlistEntry, decode_entry, new_id
from engine.vocabulary import text

WAITLISTS_KEEP = 50  # events a user's room follows for their waitlist entries, at most
WAITLIST_FOLLOW_S = 7 * 86_400  # ... for this long after they last joined one


class _QueueMember(msgspec.Struct):
    m: str = ""


_Member = msgspec.json.Decoder(_QueueMember)


class WaitlistMixin(InventoryMixin):
    """Needs the stock read (the categories of an event) of :class:`InventoryMixin`."""

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
        code, payload = reply(raw)
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
            code, payload = reply(raw)
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
