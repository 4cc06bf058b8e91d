"""Loading and calling the Lua scripts of ``lua/``.

Each script is sent with EVALSHA; a NOSCRIPT reply (Redis restarted, failover, SCRIPT
FLUSH) loads it and runs it again, which is safe because NOSCRIPT means it did not run.
``-- @include name`` lines are replaced by ``lua/lib/name.lua`` before hashing (the
sources: :mod:`engine.lua_sources`).

Concurrent calls from one process are coalesced by :meth:`Scripts.batched` into pipelined
round trips on one connection (:class:`_Pipe`): each script still runs atomically on its own,
only the network is shared. Redis Cluster batches go through redis-py's cluster pipeline.

Every call is bounded in time: a batched call Redis has not answered within the client's
``socket_timeout`` fails with :class:`redis.exceptions.TimeoutError` (one timer per
connection checks the oldest batch in flight; nothing is added per call), and the queue of
calls waiting for the connection is bounded (:class:`RedisBusy` past ``max_pending``).
:meth:`Scripts.call_then_wait` runs a script and ``WAIT`` behind it on one connection of
its own (``CONFIRM_DURABILITY=replica``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Coroutine
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import redis_seam, replica_wait
from engine.lua_sources import LUA_DIR, SOURCES, Script, is_noscript

__all__ = ["LUA_DIR", "Call", "RedisBusy", "Script", "Scripts"]

# One queued script call: the script, its EVALSHA arguments, the caller's future, and
# whether it was already sent again after a lost connection.
Call = tuple[Script, tuple[Any, ...], "asyncio.Future[Any]", bool]


class RedisBusy(RedisError):
    """Too many calls already wait for Redis in this process (it is stalled or far behind):
    failing at once beats queueing without bound. A RedisError, so callers treat it as
    Redis being unavailable (the API answers 503 with Retry-After)."""


class _Pipe:
    """A connection taken out of the pool for batched script calls (standalone Redis).

    A batch is written the moment it is formed, without awaiting anything; the one reader
    task of the connection parses replies in bulk with hiredis and hands each to its
    caller, in order. Per round trip that costs a write and a wake-up of the reader:
    redis-py's own pipeline spent ~120 us of CPU per round trip on tasks, its write
    timeout (``asyncio.wait_for``, a task per write) and stream reads, which decided the
    cost of a hold whenever holds arrive a few at a time. The connection's streams come
    from :mod:`engine.redis_seam`, the one module that touches redis-py's internals."""

    __slots__ = (
        "calls",
        "conn",
        "done",
        "loop",
        "reader",
        "sent",
        "sizes",
        "stream",
        "timer",
        "writer",
    )

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.stream, self.writer = redis_seam.streams(conn)
        self.calls: deque[Call] = deque()  # written, reply not read yet, oldest first
        self.sizes: deque[int] = deque()  # the sizes of the batches in flight
        self.sent: deque[float] = deque()  # when each batch in flight was written
        self.done = 0  # replies read of the oldest batch in flight
        self.reader: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None  # the deadline check

    @property
    def usable(self) -> bool:
        return self.reader is not None and not self.reader.done() and not self.writer.is_closing()


class Scripts:
    """The engine's scripts bound to one Redis client."""

    def __init__(
        self,
        redis: Redis,
        batch_size: int = 512,
        max_in_flight: int = 2,
        eager_at: int = 8,
        *,
        timeout_s: float | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self.redis = redis
        self.by_name = SOURCES
        self.batch_size = batch_size
        # A batched call unanswered this long fails (None: the client's socket_timeout;
        # no deadline when the client has none either).
        self.timeout_s = timeout_s if timeout_s is not None else _socket_timeout(redis)
        self.max_pending = max_pending
        # Batches written and not yet answered. Two let Redis run one while this process
        # parses the replies of the other (one at a time left both half idle).
        self.max_in_flight = max_in_flight
        self.eager_at = eager_at
        self._pending: list[Call] = []
        self._write_scheduled = False
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._cluster_in_flight = 0  # Redis Cluster: redis-py pipelines out
        self._tasks: set[asyncio.Future[Any]] = set()  # referenced until done

    async def load(self) -> None:
        """SCRIPT LOAD every script (on a cluster, redis-py sends it to every primary)."""
        for script in self.by_name.values():
            await self.redis.script_load(script.source)

    async def loaded(self) -> bool:
        flags = await self.redis.script_exists(*(s.sha for s in self.by_name.values()))
        return all(flags)

    def _args(self, script: Script, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        if len(keys) != script.num_keys:
            raise ValueError(f"{script.name} takes {script.num_keys} keys, got {len(keys)}")
        return (script.sha, script.num_keys, *keys, *args)

    async def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one script now, on its own round trip."""
        script = self.by_name[name]
        cmd = self._args(script, keys, args)
        try:
            return await self.redis.execute_command("EVALSHA", *cmd)  # type: ignore[no-untyped-call]
        except ResponseError as e:
            if not is_noscript(e):
                raise
        await self.redis.script_load(script.source)
        return await self.redis.execute_command("EVALSHA", *cmd)  # type: ignore[no-untyped-call]

    def batched(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue a script call to share a pipelined round trip with concurrent ones.

        The batch leaves on the next loop turn (after the callers already woken have
        queued their calls too), or at once when ``eager_at`` calls are queued: without
        that, a burst of requests parsed in one turn sent its holds only after the whole
        burst, and the worker then waited for Redis with nothing to do (at 64 connections
        it sat idle ~17 % of the time under wrk). With ``max_in_flight`` batches out, the
        next leaves when one is answered."""
        script = self.by_name[name]
        if len(self._pending) >= self.max_pending:
            raise RedisBusy(f"{len(self._pending)} calls already wait for Redis")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, self._args(script, keys, args), fut, False))
        if len(self._pending) >= self.eager_at:
            self._write()
        elif not self._write_scheduled:
            self._write_scheduled = True
            loop.call_soon(self._scheduled_write)
        return fut

    def _scheduled_write(self) -> None:
        self._write_scheduled = False
        self._write()

    def _write(self) -> None:
        """Send what is pending, as far as ``max_in_flight`` allows; never awaits."""
        if not self._pending:
            return
        if not isinstance(self.redis, Redis):
            if self._cluster_in_flight < self.max_in_flight:
                self._cluster_in_flight += 1
                self._spawn(self._run_cluster_batch(self._take()))
            return
        pipe = self._pipe
        if pipe is None or not pipe.usable:
            if self._connecting is None:
                self._connecting = self._spawn(self._open_pipe())
            return
        while self._pending and len(pipe.sizes) < self.max_in_flight:
            batch = self._take()
            pipe.writer.write(
                b"".join(hiredis.pack_command(("EVALSHA", *cmd)) for _, cmd, _, _ in batch)
            )
            pipe.calls.extend(batch)
            pipe.sizes.append(len(batch))
            pipe.sent.append(pipe.loop.time())

    def _take(self) -> list[Call]:
        batch = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        return batch

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open_pipe(self) -> None:
        """Take a connection from the pool (connected, authenticated) for batched calls;
        when Redis cannot be reached, every pending call fails with that error."""
        try:
            conn = await redis_seam.take_connection(self.redis)
        except BaseException as e:
            self._connecting = None
            batch, self._pending = self._pending, []
            _fail(batch, e)
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        self._connecting = None
        pipe = _Pipe(conn)
        pipe.reader = self._spawn(self._read(pipe))
        self._pipe = pipe
        if self.timeout_s:
            pipe.timer = pipe.loop.call_later(self._check_every, self._check_deadline, pipe)
        self._write()

    @property
    def _check_every(self) -> float:
        return max(0.05, (self.timeout_s or 0) / 4)

    def _check_deadline(self, pipe: _Pipe) -> None:
        """The connection's periodic check: when Redis has not answered its oldest batch in
        flight within ``timeout_s``, every call waiting on it (written or queued) fails
        with TimeoutError, and the connection is dropped for a fresh one. The calls are
        not sent again: Redis is stalled, and whether they ran is for their callers to find
        out by retrying (every script is idempotent by its request id)."""
        pipe.timer = None
        if pipe.reader is None or pipe.reader.done():
            return
        timeout = self.timeout_s or 0
        if not pipe.sent or pipe.loop.time() - pipe.sent[0] < timeout:
            pipe.timer = pipe.loop.call_later(self._check_every, self._check_deadline, pipe)
            return
        if self._pipe is pipe:
            self._pipe = None
        error = RedisTimeoutError(f"Redis did not answer within {timeout:g}s")
        waiting = list(pipe.calls)
        pipe.calls.clear()
        waiting += self._pending
        self._pending = []
        _fail(waiting, error)
        pipe.writer.transport.abort()  # the reader sees the end and gives the connection back

    async def _read(self, pipe: _Pipe) -> None:
        """Replies of one connection to their callers, until the connection is lost."""
        parser = hiredis.Reader(replyError=ResponseError)
        try:
            while True:
                data = await pipe.stream.read(65536)
                if not data:
                    raise RedisConnectionError("Redis closed the connection")
                parser.feed(data)
                noscript: list[Call] = []
                while (reply := parser.gets()) is not False:
                    item = pipe.calls.popleft()
                    pipe.done += 1
                    if pipe.done == pipe.sizes[0]:
                        pipe.sizes.popleft()
                        pipe.sent.popleft()
                        pipe.done = 0
                    _settle(item, reply, noscript)
                if noscript:
                    self._spawn(self._reload(noscript))
                self._write()
        except asyncio.CancelledError:  # shutting down: nothing is sent again
            if self._pipe is pipe:
                self._pipe = None
            if pipe.timer is not None:
                pipe.timer.cancel()
            pipe.writer.close()
            _fail(list(pipe.calls), RedisConnectionError("the engine is shutting down"))
            raise
        except Exception as e:  # a lost connection, or replies out of step with calls
            self._lost(pipe, e)

    def _lost(self, pipe: _Pipe, error: BaseException) -> None:
        """The connection is gone. Calls it carried are sent once more on a fresh one
        (safe: every script is idempotent by its request id); a call lost twice fails."""
        if self._pipe is pipe:
            self._pipe = None
        if pipe.timer is not None:
            pipe.timer.cancel()
        self._spawn(self._release(pipe.conn))
        again = [(s, cmd, fut, True) for s, cmd, fut, retried in pipe.calls if not retried]
        lost = [call for call in pipe.calls if call[3]]
        pipe.calls.clear()
        if not isinstance(error, RedisConnectionError):
            error = RedisConnectionError(f"lost the connection to Redis: {error!r}")
        _fail(lost, error)
        if again:
            self._pending[:0] = again
            self._write()

    async def _release(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await redis_seam.give_back(self.redis, conn)

    async def _reload(self, calls: list[Call]) -> None:
        """NOSCRIPT (a restarted Redis, SCRIPT FLUSH) means the script did not run: load
        it and send the calls again."""
        try:
            for script in {c[0].name: c[0] for c in calls}.values():
                await self.redis.script_load(script.source)
        except BaseException as e:
            _fail(calls, e)
            if isinstance(e, asyncio.CancelledError):
                raise
            return
        self._pending[:0] = calls
        self._write()

    async def _run_cluster_batch(self, batch: list[Call]) -> None:
        """Redis Cluster: redis-py's pipeline, which routes each call by its slot."""
        try:
            try:
                results = await self._cluster_send([cmd for _, cmd, _, _ in batch])
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # Once more (a failover moved the slot): every script is idempotent.
                results = await self._cluster_send([cmd for _, cmd, _, _ in batch])
        except BaseException as e:
            self._cluster_in_flight -= 1
            _fail(batch, e)
            self._write()  # calls queued meanwhile still go
            return
        self._cluster_in_flight -= 1
        noscript: list[Call] = []
        for item, result in zip(batch, results, strict=True):
            _settle(item, result, noscript)
        if noscript:
            await self._reload(noscript)
        self._write()

    async def _cluster_send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command("EVALSHA", *cmd)
        return list(await pipe.execute(raise_on_error=False))

    async def call_then_wait(
        self, name: str, keys: list[str], args: list[Any], replicas: int, timeout_ms: int
    ) -> tuple[Any, int]:
        """Run one script, then ``WAIT replicas timeout_ms`` right behind it on the same
        connection, one of its own (:mod:`engine.replica_wait`); returns the script's reply
        and how many replicas acknowledged."""
        script = self.by_name[name]
        cmd = self._args(script, keys, args)
        return await replica_wait.call_then_wait(
            self.redis, script, cmd, keys[0], replicas, timeout_ms, self.timeout_s
        )


def _socket_timeout(redis: Any) -> float | None:
    """The ``socket_timeout`` a client's connections are built with, if any."""
    if isinstance(redis, Redis):
        kwargs = redis.connection_pool.connection_kwargs
    else:
        kwargs = getattr(getattr(redis, "nodes_manager", None), "connection_kwargs", {})
    value = kwargs.get("socket_timeout")
    return float(value) if value else None


def _settle(item: Call, reply: Any, noscript: list[Call]) -> None:
    """One reply to its caller (an error reply as its exception); a NOSCRIPT call goes to
    ``noscript``, to be loaded and sent again."""
    fut = item[2]
    if isinstance(reply, BaseException):
        if is_noscript(reply):
            noscript.append(item)
        elif not fut.done():
            fut.set_exception(reply)
    elif not fut.done():
        fut.set_result(reply)


def _fail(batch: list[Call], exc: BaseException) -> None:
    for _, _, fut, _ in batch:
        if not fut.done():
            fut.set_exception(exc)
