"""Hold expiry: the keyspace-notification listener (fast path) and the sweeper (guarantee).

Both call idempotent scripts, so a hold released by one is left alone by the other.
The listener reacts to ``expired`` events of timer keys by sweeping the events they name;
the sweeper claims due holds from each event's deadline sorted set at the earliest deadline
it knows of and every ``interval`` seconds, which also covers lost notifications, a
listener outage and timer keys that vanished during an AOF reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
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
                # Drain what else is waiting, then sweep each event named once: a
                # notification says "this event has a due hold", and one sweep releases
                # all of them in a few script calls (batches of ``sweep_batch``), the ones
                # whose timers Redis has not got round to yet included. Releasing hold by
                # hold (one expire_hold each) cost the listener more CPU than the burst
                # left it, and waited for Redis to fire every timer.
                batch = [msg]
                while len(batch) < 1000:
                    if len(batch) % 100 == 0:
                        # A buffered message is read without yielding to the loop: let
                        # the sweeper and the requests of this process run meanwhile.
                        await asyncio.sleep(0)
                    more = await pubsub.get_message(timeout=0)
                    if more is None:
                        break
                    batch.append(more)
                timers = [
                    t for t in (keys.parse_timer(text(m["data"])) for m in batch) if t is not None
                ]
                self.stats.notified += len(timers)
                event_ids = list(dict.fromkeys(t.event_id for t in timers))
                swept = await asyncio.gather(*(self.engine.sweep(e) for e in event_ids))
                for event_id, result in zip(event_ids, swept, strict=True):
                    self.stats.released_by_listener += result.released
                    if result.next_deadline_ms is not None:  # plan this process's sweeper
                        self.engine.note_deadline(event_id, result.next_deadline_ms, result.now_ms)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class Sweeper:
    """Releases due holds at their deadlines, and every ``interval`` seconds sweeps every
    armed event (``keys.EVENTS``: a forgotten event is not visited) and then prunes the
    finished orders whose retention window has passed (``prune=False`` leaves them).

    The interval sweep is the guarantee; between two of them the sweeper sleeps until the
    earliest deadline it knows of and sweeps just the events that are due. It learns the
    deadlines without extra calls: every sweep's script returns its event's earliest
    deadline left (a waitlist offer the sweep made included), and the engine tells it of
    each hold made in this process (:meth:`Engine.note_deadline`), waking it early when a
    nearer one arrives. A hold another process makes is learned by the next interval
    sweep, so it too is released at its deadline when its lifetime exceeds one interval
    (and by that process's sweeper, or the listener, otherwise). Deadline wake-ups are at
    least ``granularity`` seconds apart, so a burst is released in batches; at idle (no
    hold due before the next interval) the sweeper makes no call besides the interval
    sweep's. A stale plan (a hold released by the listener, confirmed, or extended) costs
    one sweep that finds nothing due and returns the true next deadline.
    """

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        stats: ExpiryStats | None = None,
        *,
        prune: bool = True,
        granularity: float = 0.02,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.stats = stats or ExpiryStats()
        self.prune = prune
        self.granularity = granularity
        # event id -> loop time of its earliest known deadline; the heap orders them
        # (entries no longer equal to the event's plan are stale and skipped).
        self._plan: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        # Deadlines noted while an event's sweep is in flight: its reply must not
        # overwrite a nearer hold made meanwhile.
        self._fresh: dict[str, float] = {}
        self._in_flight: set[str] = set()
        self._wake = asyncio.Event()
        self._sleep_until = float("inf")
        self._last_deadline_sweep = float("-inf")
        self._next_full = 0.0

    # -- planning ------------------------------------------------------------------------

    def note(self, event_id: str, deadline_ms: int, now_ms: int) -> None:
        """A hold of ``event_id`` is due at ``deadline_ms`` (server clock ``now_ms``)."""
        at = asyncio.get_running_loop().time() + max(0, deadline_ms - now_ms + 1) / 1000
        if event_id in self._in_flight:
            self._fresh[event_id] = min(at, self._fresh.get(event_id, at))
        if self._set_plan(event_id, at, nearer_only=True) and at < self._sleep_until:
            self._wake.set()

    def _set_plan(self, event_id: str, at: float | None, *, nearer_only: bool = False) -> bool:
        current = self._plan.get(event_id)
        if at is None:
            self._plan.pop(event_id, None)
            return False
        if nearer_only and current is not None and current <= at:
            return False
        self._plan[event_id] = at
        heapq.heappush(self._heap, (at, event_id))
        if len(self._heap) > 4 * len(self._plan) + 64:  # drop the stale entries
            self._heap = [(t, e) for e, t in self._plan.items()]
            heapq.heapify(self._heap)
        return True

    def _next_planned(self) -> float:
        while self._heap:
            at, event_id = self._heap[0]
            if self._plan.get(event_id) == at:
                return at
            heapq.heappop(self._heap)
        return float("inf")

    def _due(self, now: float) -> list[str]:
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, event_id = heapq.heappop(self._heap)
            if self._plan.get(event_id) == at:
                del self._plan[event_id]
                due.append(event_id)
        return due

    async def _sweep(self, event_id: str) -> int:
        """Sweep one event and re-plan it from the reply."""
        self._in_flight.add(event_id)
        self._fresh.pop(event_id, None)
        try:
            result = await self.engine.sweep(event_id)
        finally:
            self._in_flight.discard(event_id)
            fresh = self._fresh.pop(event_id, None)
        loop_now = asyncio.get_running_loop().time()
        at = None
        if result.next_deadline_ms is not None:
            at = loop_now + max(0, result.next_deadline_ms - result.now_ms + 1) / 1000
        if fresh is not None and (at is None or fresh < at):
            at = fresh
        self._plan.pop(event_id, None)
        self._set_plan(event_id, at)
        return result.released

    # -- sweeping ------------------------------------------------------------------------

    async def sweep_once(self) -> int:
        """The interval sweep: every armed event, then pruning."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        released = 0
        event_ids = await self.engine.event_ids()
        armed = set(event_ids)
        for event_id in list(self._plan):
            if event_id not in armed:  # forgotten since: nothing more to release there
                self._plan.pop(event_id)
        for event_id in event_ids:
            released += await self._sweep(event_id)
        if self.prune:
            # After every release: pruning is housekeeping, releasing is the guarantee.
            for event_id in event_ids:
                self.stats.pruned += await self.engine.prune_event(event_id)
        self.stats.sweeps += 1
        self.stats.released_by_sweeper += released
        self.stats.last_sweep_ms = (loop.time() - started) * 1000
        return released

    async def sweep_due(self) -> int:
        """Sweep just the events whose planned deadline has come."""
        now = asyncio.get_running_loop().time()
        due = self._due(now)
        if not due:  # woken by a nearer deadline that is not due yet
            return 0
        self._last_deadline_sweep = now
        released = 0
        for n, event_id in enumerate(due):
            try:
                released += await self._sweep(event_id)
            except BaseException:
                # Leave these to the interval sweep (it retries and re-plans them); a
                # nearer hold noted meanwhile keeps its own plan.
                for rest in due[n:]:
                    self._set_plan(rest, self._next_full, nearer_only=True)
                raise
        self.stats.extra["deadline_sweeps"] = self.stats.extra.get("deadline_sweeps", 0) + 1
        self.stats.released_by_sweeper += released
        return released

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.engine.deadline_watchers.append(self.note)
        stopper = asyncio.create_task(self._wake_on(stop))
        self._next_full = loop.time()
        try:
            while not stop.is_set():
                try:
                    if loop.time() >= self._next_full:
                        released = await self.sweep_once()
                        self._next_full = loop.time() + self.interval
                        if released:
                            log.info("sweeper released %d due holds", released)
                    elif released := await self.sweep_due():
                        log.debug("sweeper released %d holds at their deadline", released)
                except (RedisError, OSError) as e:
                    self.stats.errors += 1
                    log.warning("sweep failed (%s); retrying next interval", e)
                    self._next_full = loop.time() + self.interval
                self._wake.clear()
                until = min(
                    self._next_full,
                    max(self._next_planned(), self._last_deadline_sweep + self.granularity),
                )
                self._sleep_until = until
                delay = until - loop.time()
                if delay > 0 and not stop.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                self._sleep_until = float("-inf")
        finally:
            self._sleep_until = float("inf")
            with contextlib.suppress(ValueError):
                self.engine.deadline_watchers.remove(self.note)
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()
