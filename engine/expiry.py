"""Hold expiry: the keyspace-notification listener (fast path) and the sweeper (guarantee).

Both call idempotent scripts, so a hold released by one is left alone by the other.
The listener reacts to ``expired`` events of timer keys; the sweeper claims due holds from
each event's deadline sorted set every ``interval`` seconds, which also covers lost
notifications, a listener outage and timer keys that vanished during an AOF reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine import keys
from engine.core import Engine

log = logging.getLogger(__name__)


@dataclass
class ExpiryStats:
    notified: int = 0
    released_by_listener: int = 0
    released_by_sweeper: int = 0
    sweeps: int = 0
    errors: int = 0
    last_sweep_ms: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class ExpiryListener:
    """Subscribes to ``__keyevent@<db>__:expired`` and releases the hold of each timer key."""

    def __init__(self, engine: Engine, stats: ExpiryStats | None = None, db: int = 0) -> None:
        self.engine = engine
        self.stats = stats or ExpiryStats()
        self.channel = f"__keyevent@{db}__:expired"
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                backoff = 0.1
            except (RedisError, OSError) as e:
                self.ready.clear()
                self.stats.errors += 1
                log.warning("expiry listener lost Redis (%s); retrying in %.1fs", e, backoff)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        redis: Redis = self.engine.redis
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.ready.set()
            while not stop.is_set():
                msg = await pubsub.get_message(timeout=0.5)
                if msg is None:
                    continue
                key = msg["data"].decode() if isinstance(msg["data"], bytes) else msg["data"]
                timer = keys.parse_timer(key)
                if timer is None:
                    continue
                self.stats.notified += 1
                if await self.engine.expire(timer.event_id, timer.order_id):
                    self.stats.released_by_listener += 1
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class Sweeper:
    """Every ``interval`` seconds, releases every due hold of every armed event."""

    def __init__(
        self, engine: Engine, interval: float = 1.0, stats: ExpiryStats | None = None
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.stats = stats or ExpiryStats()

    async def sweep_once(self) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        released = 0
        for event_id in await self.engine.event_ids():
            released += await self.engine.sweep_event(event_id)
        self.stats.sweeps += 1
        self.stats.released_by_sweeper += released
        self.stats.last_sweep_ms = (loop.time() - started) * 1000
        return released

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                released = await self.sweep_once()
                if released:
                    log.info("sweeper released %d due holds", released)
            except (RedisError, OSError) as e:
                self.stats.errors += 1
                log.warning("sweep failed (%s); retrying next interval", e)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
