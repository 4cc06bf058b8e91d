"""Everything one API process holds: clients, engine, store, background tasks.

Built in the app's lifespan, reachable from handlers as ``request.app.state["onsale"]``
(``api.deps.resources``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.security.jwt import JWTAuth, Token
from redis.asyncio import Redis

from api.runtime import ensure_redis, make_engine, redis_client
from api.security import Passwords, Principal, RateLimiter
from api.settings import Settings
from engine.core import Engine
from engine.expiry import ExpiryListener, ExpiryStats, Sweeper
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from persistence.aio import AsyncStore
from persistence.store import Event, open_store

log = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    redis: Redis
    engine: Engine
    store: AsyncStore
    passwords: Passwords
    jwt_auth: JWTAuth[Principal, Token]
    limiter: RateLimiter
    expiry_stats: ExpiryStats = field(default_factory=ExpiryStats)
    writer: Any = None
    hub: Any = None
    embedded_redis: RedisServer | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.store.close()
        self.passwords.close()
        await self.redis.aclose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def category_specs(event: Event, sold: dict[str, int]) -> list[CategorySpec]:
    return [
        CategorySpec(id=c.id, name=c.name, price=c.price, total=c.total, sold=sold.get(c.id, 0))
        for c in event.categories
    ]


async def rearm_from_store(engine: Engine, store: AsyncStore) -> int:
    """Arm every stored event Redis does not know (e.g. after a Redis loss), with sold
    counts from persisted confirmed orders, so nothing is sold twice. Idempotent.

    Holds the store still shows as RESERVED died with Redis: their tickets are on sale
    again, so they are recorded as EXPIRED (a newer version, so a late replay of the
    writer cannot bring them back)."""
    armed = 0
    for event in await store.all_events():
        if await engine.stock(event.id) is not None:
            continue
        sold = await store.sold_counts(event.id)
        await engine.arm_event(event.id, category_specs(event, sold), on_sale=event.state == "open")
        await expire_lost_holds(store, event.id)
        armed += 1
    if armed:
        log.info("re-armed %d events from the store", armed)
    return armed


async def expire_lost_holds(store: AsyncStore, event_id: str, page_size: int = 500) -> int:
    expired = 0
    while True:
        held, _ = await store.list_orders(1, page_size, status="RESERVED", event_id=event_id)
        if not held:
            return expired
        now = int(time.time() * 1000)
        await store.upsert_orders(
            [
                msgspec.structs.replace(o, status="EXPIRED", version=o.version + 1, updated_at=now)
                for o in held
            ]
        )
        expired += len(held)


async def build_resources(settings: Settings, jwt_auth: JWTAuth[Principal, Token]) -> Resources:
    url, server = ensure_redis(settings)
    redis = redis_client(url, settings)
    engine = make_engine(redis, settings)
    await engine.start()
    store = AsyncStore(open_store(settings.mongodb_uri, settings.data_dir))
    res = Resources(
        settings=settings,
        redis=redis,
        engine=engine,
        store=store,
        passwords=Passwords(
            settings.bcrypt_rounds, settings.bcrypt_threads, settings.bcrypt_max_queue
        ),
        jwt_auth=jwt_auth,
        limiter=RateLimiter(engine, settings.rate_limit_per_minute),
        embedded_redis=server,
    )
    await rearm_from_store(engine, store)
    from api.ws import Hub

    res.hub = Hub(redis, engine, jwt_auth, store)
    res.tasks.append(asyncio.create_task(res.hub.run(res.stop), name="feed-hub"))
    if settings.run_expiry:
        listener = ExpiryListener(engine, res.expiry_stats)
        sweeper = Sweeper(engine, settings.sweep_interval_s, res.expiry_stats)
        res.tasks.append(asyncio.create_task(listener.run(res.stop), name="expiry-listener"))
        res.tasks.append(asyncio.create_task(sweeper.run(res.stop), name="sweeper"))
    if settings.run_writer:
        from persistence.writer import OrderWriter

        res.writer = OrderWriter(
            redis,
            store,
            consumer_name=f"{socket.gethostname()}-{os.getpid()}",
            linger_ms=settings.writer_linger_ms,
        )
        res.tasks.append(asyncio.create_task(res.writer.run(res.stop), name="writer"))
    return res
