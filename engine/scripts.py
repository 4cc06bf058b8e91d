"""Loading and calling the Lua scripts of ``lua/``.

Each script is sent with EVALSHA; a NOSCRIPT reply (Redis restarted, failover, SCRIPT
FLUSH) loads it and runs it again, which is safe because NOSCRIPT means it did not run.
``-- @include name`` lines are replaced by ``lua/lib/name.lua`` before hashing.

Concurrent calls from one process are coalesced by :class:`ScriptBatcher` into pipelined
round trips: each script still runs atomically on its own, only the network is shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def _lua_dir() -> Path:
    """``lua/`` of a source checkout (editable install), else the copy a wheel installs
    under ``<prefix>/share/onsale/lua`` (pyproject ``data-files``)."""
    import sys

    for candidate in (
        Path(__file__).resolve().parent.parent / "lua",
        Path(sys.prefix) / "share" / "onsale" / "lua",
    ):
        if (candidate / "lib" / "common.lua").is_file():
            return candidate
    raise FileNotFoundError("the lua/ scripts are neither beside engine/ nor installed")


LUA_DIR = _lua_dir()
_INCLUDE = re.compile(r"^-- @include (\w+)$", re.MULTILINE)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str
    num_keys: int


def _expand(text: str) -> str:
    return _INCLUDE.sub(lambda m: (LUA_DIR / "lib" / f"{m.group(1)}.lua").read_text(), text)


def load_sources(lua_dir: Path = LUA_DIR) -> dict[str, Script]:
    """Every ``<name>-<N>.lua`` under lua_dir, keyed by name."""
    scripts: dict[str, Script] = {}
    for path in sorted(lua_dir.glob("*.lua")):
        name, _, n = path.stem.rpartition("-")
        source = _expand(path.read_text())
        sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        scripts[name] = Script(name, source, sha, int(n))
    return scripts


_SOURCES = load_sources()

# One queued script call: the script, its EVALSHA arguments, the caller's future.
Call = tuple[Script, tuple[Any, ...], "asyncio.Future[Any]"]


async def _read_replies(conn: Any, count: int) -> list[Any]:
    """``count`` replies parsed in bulk by one hiredis Reader fed from the connection's
    stream: redis-py's per-reply path (timeout context, health checks) cost more than the
    parsing (10.7k -> 13.5k holds/s from one process). The connection was handed to us
    idle and carries only these replies, so nothing is left behind for its next user.
    Error replies become ResponseError objects."""
    stream = getattr(conn, "_reader", None)
    if stream is None:  # not the asyncio stream connection this relies on
        results: list[Any] = []
        for _ in range(count):
            try:
                results.append(await conn.read_response())
            except ResponseError as e:
                results.append(e)
        return results
    reader = hiredis.Reader(replyError=ResponseError)
    results = []
    while len(results) < count:
        reply = reader.gets()
        if reply is False:
            data = await stream.read(65536)
            if not data:
                raise RedisConnectionError("connection closed while reading replies")
            reader.feed(data)
            continue
        results.append(reply)
    return results


def _is_noscript(exc: BaseException) -> bool:
    return isinstance(exc, NoScriptError) or (
        isinstance(exc, ResponseError) and str(exc).startswith("NOSCRIPT")
    )


class Scripts:
    """The engine's scripts bound to one Redis client."""

    def __init__(
        self, redis: Redis, batch_size: int = 512, max_in_flight: int = 2, eager_at: int = 8
    ) -> None:
        self.redis = redis
        self.by_name = _SOURCES
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.eager_at = eager_at
        self._pending: list[Call] = []
        self._flush_scheduled = False
        self._in_flight = 0
        # Connections kept out of the pool between batches (standalone Redis), at most
        # max_in_flight: an eager send needs one at hand without awaiting the pool.
        self._idle: list[Any] = []
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
            if not _is_noscript(e):
                raise
        await self.redis.script_load(script.source)
        return await self.redis.execute_command("EVALSHA", *cmd)  # type: ignore[no-untyped-call]

    def batched(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue a script call to share a pipelined round trip with concurrent ones."""
        script = self.by_name[name]
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, self._args(script, keys, args), fut))
        if len(self._pending) >= self.eager_at and self._idle:
            self._send_now()
        self._schedule(loop)
        return fut

    def _send_now(self) -> None:
        """Write what is pending at once, inside the caller's turn, on a connection kept
        at hand. Without this the batch left only after every request of an event-loop
        turn had been parsed, and the worker then waited for Redis with nothing to do (a
        convoy: at 64 connections it sat idle ~17 % of the time under wrk). Now Redis runs
        the first holds while the worker parses the rest."""
        if self._in_flight >= self.max_in_flight:
            return
        conn = self._idle.pop()
        writer = getattr(conn, "_writer", None)
        if writer is None or writer.is_closing() or getattr(conn, "_reader", None) is None:
            self._spawn(self._discard(conn))
            return
        batch = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        try:
            writer.write(b"".join(hiredis.pack_command(("EVALSHA", *cmd)) for _, cmd, _ in batch))
        except Exception:  # a transport closed under us: the scheduled flush sends it
            self._pending[:0] = batch
            self._spawn(self._discard(conn))
            return
        self._in_flight += 1
        self._spawn(self._finish_eager(conn, batch))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_eager(self, conn: Any, batch: list[Call]) -> None:
        try:
            try:
                results = await _read_replies(conn, len(batch))
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # As in _run_batch: once more on a fresh connection (idempotent scripts).
                await self._discard(conn)
                await self._drop_idle()
                await self._run_batch(batch)
                return
            except BaseException as e:
                await self._discard(conn)
                _fail(batch, e)
                return
            await self._keep(conn)
            await self._deliver(batch, results)
        finally:
            self._in_flight -= 1
            if self._pending:
                self._schedule(asyncio.get_running_loop())

    async def _keep(self, conn: Any) -> None:
        """A connection whose batch is done: kept at hand for the next (eager) batch, up
        to max_in_flight of them, else back to the pool."""
        if len(self._idle) < self.max_in_flight:
            self._idle.append(conn)
        else:
            await self.redis.connection_pool.release(conn)

    async def _drop_idle(self) -> None:
        """A connection failed: the ones kept at hand most likely died with it (a Redis
        restart), so none is reused."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    async def _discard(self, conn: Any) -> None:
        pool = self.redis.connection_pool
        try:
            await conn.disconnect()
        finally:
            await pool.release(conn)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send what is pending on the next loop turn (after the callers already woken
        have queued their calls too), unless max_in_flight batches are out already: then
        the first to come back sends it. Two in flight let Redis run one batch while this
        process parses the replies of the other (one at a time left both half idle)."""
        if self._flush_scheduled or self._in_flight >= self.max_in_flight:
            return
        self._flush_scheduled = True
        loop.call_soon(lambda: self._spawn(self._flush()))

    async def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending:
            return
        batch = self._pending[: self.batch_size]
        del self._pending[: self.batch_size]
        self._in_flight += 1
        try:
            # A batch of one too: hiredis packing and parsing cost less than redis-py's
            # execute_command path even for a single call.
            await self._run_batch(batch)
        finally:
            self._in_flight -= 1
            if self._pending:
                self._schedule(asyncio.get_running_loop())

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """EVALSHA every command on one connection in one write; replies in order, errors
        as exception objects. Standalone Redis: packed by hiredis in C (redis-py's asyncio
        packer is pure Python and was most of the engine's CPU time). Cluster: redis-py's
        pipeline, which routes by slot."""
        if not isinstance(self.redis, Redis):
            pipe = self.redis.pipeline(transaction=False)
            for cmd in commands:
                pipe.execute_command("EVALSHA", *cmd)
            return list(await pipe.execute(raise_on_error=False))
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            payload = b"".join(hiredis.pack_command(("EVALSHA", *cmd)) for cmd in commands)
            await conn.send_packed_command(payload, check_health=False)
            replies = await _read_replies(conn, len(commands))
        except BaseException as e:
            await self._discard(conn)
            if isinstance(e, (RedisConnectionError, RedisTimeoutError, OSError)):
                await self._drop_idle()
            raise
        await self._keep(conn)
        return replies

    async def _run_batch(self, batch: list[Call]) -> None:
        commands = [cmd for _, cmd, _ in batch]
        try:
            try:
                results = await self._send(commands)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # A pooled connection that died with a restarted Redis: once more on a
                # fresh one. Safe: every script is idempotent by its request id.
                results = await self._send(commands)
        except BaseException as e:
            _fail(batch, e)
            return
        await self._deliver(batch, results)

    async def _deliver(
        self,
        batch: list[Call],
        results: list[Any],
    ) -> None:
        """Each reply to its caller; NOSCRIPT calls are loaded and run again."""
        retry: list[Call] = []
        for item, result in zip(batch, results, strict=True):
            fut = item[2]
            if isinstance(result, BaseException):
                if _is_noscript(result):
                    retry.append(item)
                elif not fut.done():
                    fut.set_exception(result)
            elif not fut.done():
                fut.set_result(result)
        if retry:
            for script in {s.name: s for s, _, _ in retry}.values():
                try:
                    await self.redis.script_load(script.source)
                except BaseException as e:
                    _fail(retry, e)
                    return
            await self._run_batch(retry)


def _fail(batch: list[Call], exc: BaseException) -> None:
    for _, _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
