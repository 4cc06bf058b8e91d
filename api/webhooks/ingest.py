"""The webhook dispatcher's ingest loop (:class:`WebhookIngest`): every order log read
through its own consumer group (``keys.WEBHOOK_GROUP``) with the writer's stream helpers,
each entry turned into deliveries for the endpoints that want it (and ``event.sold_out``
once per sell-out), recorded in the webhook store (insert-if-new by a stable id) and only
then acknowledged. A dispatcher that dies leaves its entries pending; it re-reads them
when it restarts under the same name and any dispatcher reclaims them after
``min_idle_ms``. The delivering side is :mod:`api.webhooks.dispatcher`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from api.present import event_out, order_out
from api.webhooks import messages
from engine import keys
from engine.core import Engine
from engine.models import decode_order
from engine.vocabulary import text
from persistence.aio import AsyncStore
from persistence.errors import StoreError
from persistence.webhooks import AsyncWebhookStore, Delivery, WebhookEndpoint
from persistence.writer.companions import enable_webhooks
from persistence.writer.groups import ack, claim_idle, consumed, ensure_group
from persistence.writer.streams import (
    ORDER_FIELD,
    Entry,
    id_ms,
    next_id,
    order_logs,
    parse_id,
    read_group,
)

if TYPE_CHECKING:
    from api.webhooks.dispatcher import DispatchConfig, DispatchStats

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class WebhookIngest:
    """Order log entries to recorded deliveries; ``wake()`` tells the delivering side."""

    def __init__(
        self,
        redis: Redis,
        engine: Engine,
        hooks: AsyncWebhookStore,
        store: AsyncStore,
        config: DispatchConfig,
        consumer: str,
        stats: DispatchStats,
        wake: Callable[[], None],
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.hooks = hooks
        self.store = store
        self.config = config
        self.consumer = consumer
        self.stats = stats
        self._wake = wake
        self.idle = False  # no active endpoint: the logs are passed by, not read

    async def run(self, stop: asyncio.Event) -> None:
        streams: dict[str, str] = {}
        refreshed = reclaimed = 0.0
        backlog = True  # first our own pending entries (a restart under the same name)
        first = True
        backoff = 0.05
        while not stop.is_set():
            try:
                now = time.monotonic()
                if now - refreshed >= self.config.refresh_streams_s:
                    streams = await self._follow(streams, scan=first)
                    refreshed, first = now, False
                    self.idle = not await self.hooks.active_endpoints()
                    if self.idle:
                        self.idle = not await self._pass_by(streams)
                        backlog = True
                if self.idle:
                    await pause(stop, self.config.refresh_streams_s)
                    refreshed = 0.0
                    continue
                if not streams:
                    await pause(stop, self.config.block_ms / 1000)
                    continue
                if backlog:
                    entries, missing = await read_group(
                        self.redis,
                        keys.WEBHOOK_GROUP,
                        self.consumer,
                        streams,
                        "0",
                        count=self.config.batch,
                        block_ms=None,
                    )
                    backlog = bool(entries)
                else:
                    entries, missing = await read_group(
                        self.redis,
                        keys.WEBHOOK_GROUP,
                        self.consumer,
                        streams,
                        ">",
                        count=self.config.batch,
                        block_ms=self.config.block_ms,
                    )
                if missing:
                    for stream in streams:
                        await ensure_group(self.redis, stream, keys.WEBHOOK_GROUP)
                if now - reclaimed >= self.config.reclaim_interval_s:
                    reclaimed = now
                    for stream in streams:
                        claimed = await claim_idle(
                            self.redis,
                            stream,
                            keys.WEBHOOK_GROUP,
                            self.consumer,
                            self.config.min_idle_ms,
                            count=self.config.batch,
                            enough=self.config.batch,
                        )
                        entries.extend(claimed.entries)
                        backlog = backlog or claimed.orphaned
                if entries:
                    await self._ingest(entries)
                    await ack(self.redis, keys.WEBHOOK_GROUP, entries)
                    self._wake()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (RedisError, StoreError, OSError) as e:
                self.stats.errors += 1
                log.warning("webhooks: ingest failed, retrying in %.2fs: %s", backoff, e)
                backlog = True  # what we read but did not acknowledge is pending for us
                await pause(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _follow(self, streams: dict[str, str], *, scan: bool) -> dict[str, str]:
        """The armed events' logs (plus, at start, every log in the keyspace), each with
        our group; a log whose event left is followed until we consumed it."""
        logs = await order_logs(self.redis, scan=scan)
        if scan:  # at start: from now on the writer creates our group with its own
            await enable_webhooks(self.redis, [])
        for stream in logs.keys() - streams.keys():
            await ensure_group(self.redis, stream, keys.WEBHOOK_GROUP)
        kept = dict(logs)
        for stream, event_id in streams.items():
            if stream not in logs and not await consumed(self.redis, stream, keys.WEBHOOK_GROUP):
                kept[stream] = event_id
        return kept

    async def _pass_by(self, streams: dict[str, str]) -> bool:
        """No endpoint is active, so no entry is owed to anyone: move our group past every
        entry of the logs (acknowledge its pending ones, set its last-delivered id to the
        newest entry) instead of reading and decoding each one, which cost ~14 % of a
        worker's CPU during a sale with no webhook registered (py-spy). The writer may
        trim the logs behind us as before.

        An endpoint registered meanwhile is owed the changes after its registration (and
        another dispatcher that saw it may have had some of these entries in hand): if one
        is active once the logs are passed, the passed entries are ingested here after
        all. Deliveries are insert-if-new by a stable id, so twice is harmless. Returns
        True in that case (the endpoints are back)."""
        passed: list[tuple[str, str, str]] = []  # (stream, first passed id, last passed id)
        for stream in streams:
            span = await self._pass_log(stream)
            if span is not None:
                passed.append((stream, *span))
        if not passed or not await self.hooks.active_endpoints():
            return False
        for stream, low, high in passed:
            start = low
            while True:
                found = await self.redis.xrange(
                    stream, min=start, max=high, count=self.config.batch
                )
                entries = [Entry(stream, text(i), fields or {}) for i, fields in found or []]
                if entries:
                    await self._ingest(entries)
                if len(entries) < self.config.batch:
                    break
                start = next_id(entries[-1].id)
        self._wake()
        return True

    async def _pass_log(self, stream: str) -> tuple[str, str] | None:
        """Our group on ``stream`` moved past every entry; the span of ids passed."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # the log is gone
            return None
        info = next((g for g in groups if text(g["name"]) == keys.WEBHOOK_GROUP), None)
        newest = await self.redis.xrevrange(stream, count=1)
        if info is None or not newest:
            return None
        high = text(newest[0][0])
        delivered = text(info["last-delivered-id"])
        low = next_id(delivered)
        if int(info["pending"]):
            summary = await self.redis.xpending(stream, keys.WEBHOOK_GROUP)
            if summary["min"] is not None:
                low = text(summary["min"])
        elif parse_id(high) <= parse_id(delivered):
            return None  # nothing new
        await self.redis.xgroup_setid(stream, keys.WEBHOOK_GROUP, high)
        while True:  # the pending entries, whoever holds them
            rows = await self.redis.xpending_range(
                stream, keys.WEBHOOK_GROUP, min="-", max=high, count=1000
            )
            if not rows:
                break
            await ack(
                self.redis,
                keys.WEBHOOK_GROUP,
                [Entry(stream, text(r["message_id"]), {}) for r in rows],
            )
        return low, high

    async def _ingest(self, entries: Sequence[Entry]) -> None:
        self.stats.entries += len(entries)
        endpoints = await self.hooks.active_endpoints()
        if not endpoints:
            return
        now = now_ms()
        out: list[Delivery] = []
        sold_out_flags: list[str] = []
        last_change: dict[str, tuple[Entry, str]] = {}  # event -> its latest stock change
        for entry in entries:
            raw = entry.field(ORDER_FIELD)
            if raw is None:
                continue  # deleted while pending
            try:
                order = decode_order(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # poison: the writer dead-letters it
            kind = messages.order_type(order)
            if kind is None:
                continue
            payload = messages.body(kind, id_ms(entry.id), msgspec.to_builtins(order_out(order)))
            out += messages.deliveries_for(
                endpoints,
                kind,
                order.event_id,
                source=entry.stream,
                stream_id=entry.id,
                subject=order.id,
                payload=payload,
                now_ms=now,
            )
            if kind != messages.ORDER_CONFIRMED:
                last_change[order.event_id] = (entry, kind)
        for event_id, (entry, kind) in last_change.items():
            if any(ep.wants(messages.EVENT_SOLD_OUT, event_id) for ep in endpoints):
                flag = await self._sold_out(endpoints, entry, event_id, kind, now, out)
                if flag:
                    sold_out_flags.append(flag)
        if out:
            self.stats.recorded += await self.hooks.add_deliveries(out)
        for flag in sold_out_flags:  # only once the deliveries are recorded
            await self.redis.set(flag, "1")

    async def _sold_out(
        self,
        endpoints: list[WebhookEndpoint],
        entry: Entry,
        event_id: str,
        kind: str,
        now: int,
        out: list[Delivery],
    ) -> str | None:
        """``event.sold_out`` when the latest hold of the batch finds no ticket available
        in any category (live stock, read now), once per sell-out: the flag is cleared
        when a release finds stock again. A sell-out undone and redone within one batch
        (dispatcher lag) is one message. Returns the flag to set."""
        flag = keys.webhook_sold_out(event_id)
        if kind not in (messages.ORDER_CREATED, messages.ORDER_CANCELLED, messages.ORDER_EXPIRED):
            return None
        stock = await self.engine.stock(event_id)
        if stock is None:
            return None
        available = sum(c.available for c in stock.categories)
        if kind != messages.ORDER_CREATED:
            if available > 0:
                await self.redis.delete(flag)
            return None
        if available > 0 or await self.redis.exists(flag):
            return None
        event = await self.store.get_event(event_id)
        if event is None:
            return None
        payload = messages.body(
            messages.EVENT_SOLD_OUT, id_ms(entry.id), msgspec.to_builtins(event_out(event, stock))
        )
        out += messages.deliveries_for(
            endpoints,
            messages.EVENT_SOLD_OUT,
            event_id,
            source=entry.stream,
            stream_id=entry.id,
            subject=f"event:{event_id}",
            payload=payload,
            now_ms=now,
        )
        return flag
