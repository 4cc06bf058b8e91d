"""The webhook ingest with no active endpoint (api/webhooks/ingest.py ``_pass_by``): it
moves its group past the order logs instead of reading them, and an endpoint that
appears while it does so still gets the changes after its registration. Real Redis, the
real SQLite webhook store, the real engine writing real order logs."""

from __future__ import annotations

import time
from pathlib import Path

from redis.asyncio import Redis

from api.webhooks.dispatcher import DispatchConfig, DispatchStats
from api.webhooks.ingest import WebhookIngest
from engine import keys
from engine.core import Engine
from engine.models import CategorySpec, new_id
from persistence.aio import AsyncStore
from persistence.factory import open_store
from persistence.webhooks import AsyncWebhookStore, WebhookEndpoint, open_webhook_store
from persistence.writer.groups import ensure_group


class AppearsOnSecondLook(AsyncWebhookStore):
    """The webhook store, with an endpoint registered between the ingest's first look at
    the endpoints (none) and its look after passing the logs."""

    def __init__(self, inner: AsyncWebhookStore, endpoint: WebhookEndpoint) -> None:
        self.inner, self.endpoint, self.looks = inner, endpoint, 0

    async def active_endpoints(self) -> list[WebhookEndpoint]:
        self.looks += 1
        if self.looks == 2:
            await self.inner.create_endpoint(self.endpoint)
        return await self.inner.active_endpoints()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_an_endpoint_registered_during_a_pass_gets_the_passed_changes(
    engine: Engine, redis: Redis, tmp_path: Path
) -> None:
    event_id = f"pass{new_id()[:8]}"
    await engine.arm_event(event_id, [CategorySpec(id="a", name="A", price=5, total=100)])
    log = keys.order_log(event_id)
    await ensure_group(redis, log, keys.WEBHOOK_GROUP)
    before = [(await engine.hold(event_id, "u1", [("a", 1)])).order.id for _ in range(3)]
    time.sleep(0.005)  # stream ids are milliseconds: the registration is between them
    registered_ms = int(time.time() * 1000)
    time.sleep(0.005)
    after = [(await engine.hold(event_id, "u1", [("a", 1)])).order.id for _ in range(4)]
    endpoint = WebhookEndpoint(
        id=new_id(),
        owner_id="org",
        url="http://127.0.0.1:9/hook",
        types=["order.created"],
        event_id=event_id,
        secret="whsec_" + "a" * 32,
        created_at=registered_ms,
    )
    hooks = AsyncWebhookStore(open_webhook_store(None, tmp_path))
    store = AsyncStore(open_store(None, tmp_path))
    looking = AppearsOnSecondLook(hooks, endpoint)
    woken: list[bool] = []
    ingest = WebhookIngest(
        redis,
        engine,
        looking,
        store,
        DispatchConfig(),
        "c1",
        DispatchStats(),
        lambda: woken.append(True),
    )
    try:
        assert await ingest.hooks.active_endpoints() == []  # the first look: none
        assert await ingest._pass_by({log: event_id}) is True  # one appeared meanwhile
        group = next(g for g in await redis.xinfo_groups(log) if g["name"] == b"webhooks")
        newest = (await redis.xrevrange(log, count=1))[0][0]
        assert group["last-delivered-id"] == newest and group["pending"] == 0
        due = await hooks.due_deliveries(int(time.time() * 1000) + 1000, 100)
        subjects = sorted(d.subject for d in due)
        assert subjects == sorted(after), (subjects, before, after)
        assert woken
    finally:
        await hooks.close()
        await store.close()


async def test_a_pass_acknowledges_entries_another_dispatcher_holds(
    engine: Engine, redis: Redis, tmp_path: Path
) -> None:
    """Pending entries of a dispatcher that died hold back trimming: passing the log
    acknowledges them too (no endpoint is active: nobody is owed them)."""
    event_id = f"pass{new_id()[:8]}"
    await engine.arm_event(event_id, [CategorySpec(id="a", name="A", price=5, total=100)])
    log = keys.order_log(event_id)
    await ensure_group(redis, log, keys.WEBHOOK_GROUP)
    for _ in range(5):
        await engine.hold(event_id, "u1", [("a", 1)])
    await redis.xreadgroup(keys.WEBHOOK_GROUP, "dead", {log: ">"}, count=2)
    hooks = AsyncWebhookStore(open_webhook_store(None, tmp_path))
    store = AsyncStore(open_store(None, tmp_path))
    ingest = WebhookIngest(
        redis, engine, hooks, store, DispatchConfig(), "c1", DispatchStats(), lambda: None
    )
    try:
        assert await ingest._pass_by({log: event_id}) is False
        group = next(g for g in await redis.xinfo_groups(log) if g["name"] == b"webhooks")
        assert group["pending"] == 0
        assert group["last-delivered-id"] == (await redis.xrevrange(log, count=1))[0][0]
        assert await ingest._pass_by({log: event_id}) is False  # nothing new: a no-op
    finally:
        await hooks.close()
        await store.close()
