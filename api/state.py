"""Everything one API process holds: clients, engine, store, services, background tasks.

Built in the app's lifespan, reachable from handlers as ``request.app.state["onsale"]``
(``api.deps``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from litestar.security.jwt import JWTAuth, Token
from redis.asyncio import Redis

from api.metrics import RedisFigures, StatsExport, attach_process, detach_process
from api.runtime import ensure_redis, make_engine, redis_client
from api.security import Passwords, Principal, RateLimiter
from api.services.admin import AdminService
from api.services.auth import AuthService
from api.services.events import EventService
from api.services.orders import OrderService
from api.services.queue import QueueService
from api.services.recovery import rearm_from_store
from api.services.waitlist import WaitlistService
from api.settings import Settings
from engine.core import Engine
from engine.expiry import ExpiryListener, ExpiryStats, Sweeper
from engine.queue import Admitter, QueueEngine
from engine.redis_server import RedisServer
from persistence.aio import AsyncStore
from persistence.factory import open_store

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
    export: StatsExport = field(default_factory=StatsExport)  # stats -> counters (api.metrics)
    writer: Any = None
    hub: Any = None
    embedded_redis: RedisServer | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    hooks: Any = None  # persistence.webhooks.AsyncWebhookStore
    dispatcher: Any = None  # api.webhooks.dispatcher.WebhookDispatcher (RUN_WEBHOOKS)
    webhooks: Any = field(init=False, default=None)  # api.services.webhooks.WebhookService
    exports: Any = field(init=False, default=None)  # api.services.exports.ExportService
    events: EventService = field(init=False)
    orders: OrderService = field(init=False)
    waitlist: WaitlistService = field(init=False)
    queue: QueueService = field(init=False)
    admin: AdminService = field(init=False)
    auth: AuthService = field(init=False)
    figures: RedisFigures = field(init=False)

    def build_services(self) -> None:
        """The services, once the writer (if any) exists: confirming waits on it."""
        self.events = EventService(
            self.engine,
            self.store,
            RateLimiter(self.engine, self.settings.events_per_hour, window_s=3600),
        )
        self.orders = OrderService(
            self.engine,
            self.store,
            self.limiter,
            durability=self.settings.confirm_durability,
            store_timeout_s=self.settings.confirm_store_timeout_s,
            writer=self.writer,
            gate=self.stock_gate(),
        )
        self.admin = AdminService(self.engine, self.store)
        self.waitlist = WaitlistService(self.engine, self.store)
        self.queue = QueueService(
            self.engine,
            self.store,
            RateLimiter(self.engine, self.settings.queue_heartbeats_per_minute),
            max_per_order=self.settings.max_tickets_per_order,
        )
        self.auth = AuthService(self.store, self.passwords, self.jwt_auth, self.limiter)
        self.build_integrations()

    def stock_gate(self) -> Any:
        """Sold-out refusals from the hub's feed (api/services/stock_gate.py)."""
        if not self.settings.stock_gate:
            return None
        from api.services.stock_gate import StockGate

        gate = StockGate(self.redis)
        self.tasks.append(asyncio.create_task(gate.run(self.stop), name="stock-gate"))
        return gate

    def build_integrations(self) -> None:
        """Webhooks (SPEC 11.1) and CSV exports (11.2)."""
        from api.services.exports import ExportService
        from api.services.webhooks import WebhookService
        from api.webhooks.dispatcher import prepare_logs
        from api.webhooks.urls import UrlPolicy

        self.exports = ExportService(self.store, self.engine)
        self.webhooks = WebhookService(
            self.hooks,
            self.store,
            UrlPolicy.of(self.settings.production, self.settings.webhook_allow_private),
            wake=self.dispatcher.wake if self.dispatcher is not None else None,
            prepare=functools.partial(prepare_logs, self.redis),
        )
        self.events.on_update = self.webhooks.event_updated
        self.figures = RedisFigures(self.engine, self.writer.lag if self.writer else None)

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        detach_process(self)
        await self.store.close()
        if self.hooks is not None:
            await self.hooks.close()
        self.passwords.close()
        await self.redis.aclose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


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
    from api.realtime.hub import Hub, Limits

    res.hub = Hub(redis, engine, jwt_auth, store, Limits.from_settings(settings))
    res.tasks.append(asyncio.create_task(res.hub.run(res.stop), name="feed-hub"))
    if settings.run_expiry:
        listener = ExpiryListener(engine, res.expiry_stats)
        sweeper = Sweeper(engine, settings.sweep_interval_s, res.expiry_stats)
        res.tasks.append(asyncio.create_task(listener.run(res.stop), name="expiry-listener"))
        res.tasks.append(asyncio.create_task(sweeper.run(res.stop), name="sweeper"))
        admitter = Admitter(QueueEngine(engine), settings.admit_interval_s)
        res.tasks.append(asyncio.create_task(admitter.run(res.stop), name="admitter"))
    if settings.run_writer:
        from persistence.writer import build_writer

        res.writer = build_writer(redis, store, linger_ms=settings.writer_linger_ms)
        res.tasks.append(asyncio.create_task(res.writer.run(res.stop), name="writer"))
    from persistence.webhooks import AsyncWebhookStore, open_webhook_store

    res.hooks = AsyncWebhookStore(open_webhook_store(settings.mongodb_uri, settings.data_dir))
    if settings.run_webhooks:
        from api.webhooks.dispatcher import DispatchConfig, WebhookDispatcher

        res.dispatcher = WebhookDispatcher(
            redis, engine, res.hooks, store, DispatchConfig.from_settings(settings)
        )
        res.tasks.append(asyncio.create_task(res.dispatcher.run(res.stop), name="webhooks"))
    res.tasks.extend(attach_process(res))
    res.build_services()
    return res
