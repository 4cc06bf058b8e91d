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
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from engine import keys
from engine.core import Engine
from engine.vocabulary import text

log = logging.getLogger(__name__)


@dataclass
class ExpiryStats:
    notified: int = 0
    released_by_listener: int = 0
    released_by_sweeper: int = 0
    pruned: int = 0
    sweeps: int = 0
    errors: int = 0
    last_sweep_ms: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class ExpiryListener:
    """Subscribes to ``__keyevent@<db>__:expired`` and releases the hold of each timer key.

    Keyspace notifications are node-local: on Redis Cluster one subscription runs per
    primary, and the set of primaries is re-read every ``topology_interval`` seconds so a
    failover or resharding is followed.
    """

    def __init__(
        self,
        engine: Engine,
        stats: ExpiryStats | None = None,
        db: int = 0,
        topology_interval: float = 5.0,
    ) -> None:
        self.engine = engine
        self.stats = stats or ExpiryStats()
        self.channel = f"__keyevent@{db}__:expired"
        self.topology_interval = topology_interval
        self.ready = asyncio.Event()
        self.nodes: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        redis = self.engine.redis
        if isinstance(redis, Redis):
            await self._follow(redis, stop)
            return
        try:
            while not stop.is_set():
                try:
                    await self._sync_primaries(redis, stop)
                except (RedisError, OSError) as e:
                    self.stats.errors += 1
                    log.warning("expiry listener cannot read the cluster topology: %s", e)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.topology_interval)
        finally:
            for task in self.nodes.values():
                task.cancel()
            await asyncio.gather(*self.nodes.values(), return_exceptions=True)

    async def _sync_primaries(self, cluster: RedisCluster, stop: asyncio.Event) -> None:
        await cluster.nodes_manager.initialize()
        primaries = {f"{n.host}:{n.port}": n for n in cluster.get_primaries()}
        for name in list(self.nodes):
            if name not in primaries or self.nodes[name].done():
                self.nodes.pop(name).cancel()
        for name, node in primaries.items():
            if name not in self.nodes:
                client = Redis(host=node.host, port=int(node.port))
                self.nodes[name] = asyncio.create_task(
                    self._follow(client, stop, owned=True), name=f"expiry-{name}"
                )
        if primaries:
            self.ready.set()

    async def _follow(self, redis: Redis, stop: asyncio.Event, owned: bool = False) -> None:
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    await self._listen(redis, stop)
                    backoff = 0.1
                except (RedisError, OSError) as e:
                    if isinstance(self.engine.redis, Redis):
                        self.ready.clear()
                    self.stats.errors += 1
                    log.warning("expiry listener lost Redis (%s); retrying in %.1fs", e, backoff)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if owned:
                with contextlib.suppress(Exception):
                    await redis.aclose()

    async def _listen(self, redis: Redis, stop: asyncio.Event) -> None:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.ready.set()
            while not stop.is_set():
                msg = await pubsub.get_message(timeout=0.5)
                if msg is None:
                    continue
                # Drain what else is waiting and release it all at once: the engine
                # pipelines concurrent calls, so a burst of expiries costs a few round
                # trips instead of one each.
                batch = [msg]
                while len(batch) < 1000:
                    more = await pubsub.get_message(timeout=0)
                    if more is None:
                        break
                    batch.append(more)
                timers = [
                    t for t in (keys.parse_timer(text(m["data"])) for m in batch) if t is not None
                ]
                self.stats.notified += len(timers)
                released = await asyncio.gather(
                    *(self.engine.expire(t.event_id, t.order_id) for t in timers)
                )
                self.stats.released_by_listener += sum(released)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class Sweeper:
    """Every ``interval`` seconds, releases every due hold of every armed event, then
    prunes the finished orders whose retention window has passed (``prune=False`` leaves
    them). Only armed events (``keys.EVENTS``) are visited: a forgotten event is not."""

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        stats: ExpiryStats | None = None,
        *,
        prune: bool = True,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.stats = stats or ExpiryStats()
        self.prune = prune

    async def sweep_once(self) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        released = 0
        event_ids = await self.engine.event_ids()
        for event_id in event_ids:
            released += await self.engine.sweep_event(event_id)
        if self.prune:
            # After every release: pruning is housekeeping, releasing is the guarantee.
            for event_id in event_ids:
                self.stats.pruned += await self.engine.prune_event(event_id)
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
