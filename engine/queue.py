"""The admission queue's engine side (SPEC 10.1): configure, join, heartbeat, leave, the
fair opening, admission and lost-heartbeat expiry, and the admitter loop that drives them.

Every state change is one Lua script (``lua/*_queue-*.lua``, ``begin_opening``,
``place_opened``, ``finish_opening``, ``expire_waiters``; the fields are documented in
``lua/lib/queue.lua``); this module builds their key lists, maps their codes and decodes
their answers. The admit script is the arbiter of admissions, so any number of
:class:`Admitter` loops (one per API process, one per ``onsale sweeper``) may run at once.

Fair opening: the seed is 32 random bytes drawn when the queue is configured;
``compromisoSemilla`` is ``sha256(seed)`` (hex) and ``semilla`` the seed (hex), revealed once
the queue is open. At ``abreEn`` the join list is frozen and ordered by
``HMAC-SHA256(key=seed, msg=usuarioId)`` (ascending hex digest, :func:`opening_order`).
Redis Lua has no HMAC, so the order is computed here and placed into the line by
``place_opened`` in batches of :data:`OPEN_BATCH`: no script runs long, whatever the
size of the pre-queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from engine import keys
from engine.core import Engine
from engine.errors import refusal
from engine.vocabulary import text

log = logging.getLogger(__name__)

OPEN_BATCH = 1000  # buyers placed per place_opened call
OPEN_LEASE_MS = 30_000  # an opener silent this long is taken over
READ_CHUNK = 10_000  # join-list members read per ZRANGE
ADMIT_BATCH = 100  # admissions per admit call
LOST_BATCH = 500  # buyers marked lost per expire_waiters call
TOUCH_BATCH = 500  # places read (and heartbeats) per touch_queue call


@dataclass(frozen=True)
class QueueSettings:
    """What an organizer configures (PUT .../queue)."""

    opens_at_ms: int
    pre_queue_minutes: float = 30
    admissions_per_minute: int | None = None
    admission_ms: int = 600_000
    tickets_per_admission: int = 2
    heartbeat_s: int = 30


@dataclass(frozen=True)
class QueueInfo:
    event_id: str
    state: str
    """PRE | ABIERTA | AGOTADA (OPENING shows as PRE; CERRADA is the API's, from the event)."""
    opens_at_ms: int
    waiting: int
    admitted: int
    commitment: str
    seed: str | None
    admissions_per_minute: int | None
    admission_ms: int
    tickets_per_admission: int
    heartbeat_s: int
    pre_queue_minutes: float
    outstanding: int = 0
    converted: int = 0
    lost: int = 0
    expired: int = 0
    sold_out_at_ms: int | None = None
    opened_at_ms: int | None = None
    opening_ms: int | None = None
    joined_pre: int = 0


@dataclass(frozen=True)
class Place:
    """One buyer's place (the API's ``estado`` is already derived: an admission past its
    expiry is PERDIDO, a waiting buyer of a sold-out queue AGOTADO)."""

    event_id: str
    user_id: str
    status: str
    position: int | None
    ahead: int | None
    eta_s: int | None
    tickets_left: int
    token: str | None = None
    token_expires_ms: int | None = None
    created: bool = False


@dataclass(frozen=True)
class AdmitResult:
    admitted: int
    state: str
    on_sale: int
    held: int
    outstanding: int
    waiting: int
    expired: int


@dataclass(frozen=True)
class OpeningResult:
    pre_queue: int
    placed: int
    seconds: float


class _Stored(msgspec.Struct):
    """A place as the scripts store it (lua/lib/queue.lua)."""

    e: str
    j: int = 0
    s: int | None = None
    p: int | None = None
    t: str | None = None
    x: int | None = None


_decode_place = msgspec.json.Decoder(_Stored).decode


def commitment_of(seed_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()


def opening_key(seed_hex: str, user_id: str) -> str:
    return hmac.new(bytes.fromhex(seed_hex), user_id.encode(), hashlib.sha256).hexdigest()


def opening_order(seed_hex: str, user_ids: list[str]) -> list[str]:
    """The join list in its opening order: ascending HMAC-SHA256(seed, usuarioId)."""
    key = bytes.fromhex(seed_hex)
    digest = {u: hmac.new(key, u.encode(), hashlib.sha256).digest() for u in user_ids}
    return sorted(user_ids, key=lambda u: (digest[u], u))


def _int(value: Any) -> int | None:
    if value is None:
        return None
    raw = text(value)
    return int(float(raw)) if raw else None


class QueueEngine:
    """The admission queues of every event, in the engine's Redis."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def redis(self) -> Any:
        return self.engine.redis

    async def _call(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        # Batched with the engine's concurrent calls (joins arrive in crowds).
        return await self.engine._run(name, keys_, args)

    # -- the organizer's side ------------------------------------------------------------

    async def configure(self, event_id: str, settings: QueueSettings) -> bool:
        """Create the event's queue (True) or change it (False); a new one draws its seed."""
        k = keys.queue_keys(event_id)
        seed = secrets.token_hex(32)
        raw = await self._call(
            "configure_queue",
            [k.queue, keys.inventory(event_id), k.waiting],
            [
                settings.opens_at_ms,
                settings.pre_queue_minutes,
                settings.admissions_per_minute or 0,
                settings.admission_ms,
                settings.tickets_per_admission,
                settings.heartbeat_s,
                commitment_of(seed),
                seed,
            ],
        )
        code, payload = int(raw[0]), text(raw[1])
        if code < 0:
            raise refusal(code, payload)
        await self.redis.sadd(keys.QUEUES, event_id)
        return code == 0

    async def delete(self, event_id: str) -> bool:
        await self.redis.srem(keys.QUEUES, event_id)
        return bool(await self._call("delete_queue", list(keys.queue_keys(event_id)), []))

    async def info(self, event_id: str) -> QueueInfo | None:
        k = keys.queue_keys(event_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(
            k.queue,
            [
                "st", "ab", "adm", "c", "sd", "rv", "apm", "am", "per", "hb", "pm", "conv",
                "lost", "exp", "so", "oa", "od", "n",
            ],
        )  # fmt: skip
        pipe.get(k.waiting)
        pipe.zcard(k.admissions)
        pipe.zcard(k.pre)
        row, waiting, outstanding, pre = await pipe.execute()
        if row[0] is None:
            return None
        f = [text(v) if v is not None else None for v in row]
        return QueueInfo(
            event_id=event_id,
            state="PRE" if f[0] == "OPENING" else str(f[0]),
            opens_at_ms=_int(f[1]) or 0,
            waiting=_int(waiting) or 0,
            admitted=_int(f[2]) or 0,
            commitment=f[3] or "",
            seed=f[4] if f[5] == "1" else None,
            admissions_per_minute=_int(f[6]) or None,
            admission_ms=_int(f[7]) or 0,
            tickets_per_admission=_int(f[8]) or 1,
            heartbeat_s=_int(f[9]) or 30,
            pre_queue_minutes=float(f[10] or 0),
            outstanding=int(outstanding),
            converted=_int(f[11]) or 0,
            lost=_int(f[12]) or 0,
            expired=_int(f[13]) or 0,
            sold_out_at_ms=_int(f[14]),
            opened_at_ms=_int(f[15]),
            opening_ms=_int(f[16]),
            joined_pre=_int(f[17]) or int(pre),
        )

    async def outflow(self, event_id: str) -> int:
        """Admissions in the last minute (the measured rate behind the estimates)."""
        since = int(time.time() * 1000) - 60_000
        return int(await self.redis.zcount(keys.queue_keys(event_id).recent, since, "+inf"))

    async def queue_ids(self) -> list[str]:
        return sorted(text(x) for x in await self.redis.smembers(keys.QUEUES))

    async def has_queue(self, event_id: str) -> bool:
        return bool(await self.redis.exists(keys.queue_keys(event_id).queue))

    # -- the buyer's side ----------------------------------------------------------------

    async def join(self, event_id: str, user_id: str) -> Place:
        k = keys.queue_keys(event_id)
        joined = self._call(
            "join_queue", [k.queue, k.waiting, k.pre, k.line, k.heartbeats], [user_id]
        )
        if not self.engine.config.batching:
            raw = await joined
            code, payload = int(raw[0]), text(raw[1])
            if code < 0:
                raise refusal(code, payload)
            place = (await self.places(event_id, [user_id]))[0]
            if place is None:  # left in between
                raise refusal(-42, "")
            return replace(place, created=code == 0)
        # Queued together: batched, both share one pipelined round trip on one connection,
        # the read running right after the join (the join is queued first: the read's
        # task only starts once this one waits).
        read = asyncio.ensure_future(self.places(event_id, [user_id]))
        try:
            raw = await joined
        except BaseException:
            read.cancel()
            raise
        code, payload = int(raw[0]), text(raw[1])
        if code < 0:
            with contextlib.suppress(Exception):
                await read
            raise refusal(code, payload)
        place = (await read)[0]
        if place is None:  # left in between
            raise refusal(-42, "")
        return replace(place, created=code == 0)

    async def places(self, event_id: str, user_ids: list[str]) -> list[Place | None]:
        """Each user's place (None: not in the queue), counting as their heartbeat."""
        k = keys.queue_keys(event_id)
        out: list[Place | None] = []
        for start in range(0, max(1, len(user_ids)), TOUCH_BATCH):
            chunk = user_ids[start : start + TOUCH_BATCH]
            raw = await self.engine._run(
                "touch_queue",
                [
                    k.queue,
                    k.heartbeats,
                    k.line,
                    k.recent,
                    keys.inventory(event_id),
                    k.waiting,
                ],
                [len(chunk), *chunk],
            )
            state = text(raw[0])
            if not state:
                raise refusal(-40, "")
            on_sale, recent, now = int(raw[1]), int(raw[2]), int(raw[4])
            for i, user_id in enumerate(chunk):
                stored, rank = text(raw[5 + 2 * i]), int(raw[6 + 2 * i])
                out.append(
                    self._place(event_id, user_id, state, stored, rank, on_sale, recent, now)
                    if stored
                    else None
                )
        return out

    @staticmethod
    def _place(
        event_id: str,
        user_id: str,
        state: str,
        stored: str,
        rank: int,
        on_sale: int,
        recent: int,
        now: int,
    ) -> Place:
        p = _decode_place(stored)
        status = p.e
        if status == "ADMITIDO" and (p.x or 0) <= now:
            status = "PERDIDO"
        elif status == "ESPERANDO" and state == "AGOTADA":
            status = "AGOTADO"
        waiting = status == "ESPERANDO" and rank >= 0
        eta = None
        if waiting and recent > 0:
            eta = round(rank * 60 / recent)
        admitted = status == "ADMITIDO"
        return Place(
            event_id=event_id,
            user_id=user_id,
            status=status,
            position=rank + 1 if waiting else None,
            ahead=rank if waiting else None,
            eta_s=eta,
            tickets_left=max(0, on_sale),
            token=p.t if admitted else None,
            token_expires_ms=p.x if admitted else None,
        )

    async def leave(self, event_id: str, user_id: str) -> str:
        k = keys.queue_keys(event_id)
        raw = await self._call(
            "leave_queue",
            [k.queue, k.waiting, k.pre, k.line, k.heartbeats, k.admissions],
            [user_id],
        )
        code, payload = int(raw[0]), text(raw[1])
        if code < 0:
            raise refusal(code, payload)
        return payload

    # -- the admitter's side -------------------------------------------------------------

    async def admit(self, event_id: str, batch: int = ADMIT_BATCH) -> AdmitResult:
        k = keys.queue_keys(event_id)
        tokens = [secrets.token_urlsafe(18) for _ in range(batch)]
        raw = await self._call(
            "admit_queue",
            [
                k.queue,
                k.waiting,
                k.line,
                k.heartbeats,
                k.admissions,
                k.recent,
                keys.inventory(event_id),
                keys.feed(event_id),
            ],
            [event_id, self.engine.config.feed_maxlen, batch, *tokens],
        )
        return AdmitResult(
            admitted=int(raw[0]),
            state=text(raw[1]),
            on_sale=int(raw[2]),
            held=int(raw[3]),
            outstanding=int(raw[4]),
            waiting=int(raw[5]),
            expired=int(raw[6]),
        )

    async def expire_lost(self, event_id: str, rounds: int = 20) -> int:
        """Mark buyers silent for 2 x latidoSegundos PERDIDO (bounded batches)."""
        k = keys.queue_keys(event_id)
        lost = 0
        for _ in range(rounds):
            raw = await self._call(
                "expire_waiters",
                [k.queue, k.waiting, k.pre, k.line, k.heartbeats],
                [LOST_BATCH],
            )
            lost += int(raw[0])
            if not int(raw[1]):
                break
        return lost

    async def open_if_due(self, event_id: str, owner: str) -> OpeningResult | None:
        """Open the queue if abreEn has come (or take over a stalled opening); None when
        there was nothing to do here."""
        k = keys.queue_keys(event_id)
        started = time.perf_counter()
        raw = await self._call("begin_opening", [k.queue, k.pre], [owner, OPEN_LEASE_MS])
        code = int(raw[0])
        if code < 0:
            raise refusal(code, text(raw[1]))
        if code == 0:
            return None
        seed, size = text(raw[1]), int(raw[2])
        members = await self.join_list(event_id)
        ordered = opening_order(seed, members)
        placed = 0
        for start in range(0, len(ordered), OPEN_BATCH):
            args: list[Any] = [owner, OPEN_LEASE_MS]
            for rank, user_id in enumerate(ordered[start : start + OPEN_BATCH], start + 1):
                args += [user_id, rank]
            got = await self._call("place_opened", [k.queue, k.line], args)
            if int(got[0]) < 0:
                log.warning("queue %s: lost the opening lease; another opener goes on", event_id)
                return None
            placed += int(got[1])
            await asyncio.sleep(0)
        done = await self._call(
            "finish_opening",
            [k.queue, k.waiting, keys.feed(event_id)],
            [owner, event_id, self.engine.config.feed_maxlen],
        )
        if int(done[0]) < 0:
            return None
        seconds = time.perf_counter() - started
        log.info("queue %s open: %d in the pre-queue ordered in %.3fs", event_id, size, seconds)
        return OpeningResult(size, placed, seconds)

    # -- fairness: what anyone may check -----------------------------------------------

    async def join_list(self, event_id: str) -> list[str]:
        """The pre-queue's members (frozen once the opening starts), in join order."""
        pre = keys.queue_keys(event_id).pre
        out: list[str] = []
        start = 0
        while True:
            chunk = await self.redis.zrange(pre, start, start + READ_CHUNK - 1)
            out += [text(u) for u in chunk]
            if len(chunk) < READ_CHUNK:
                return out
            start += READ_CHUNK

    async def opening_places(self, event_id: str) -> dict[str, int]:
        """user -> the place in line the opening gave them (pre-queue joiners only)."""
        q = keys.queue_keys(event_id).queue
        out: dict[str, int] = {}
        async for field, value in self.redis.hscan_iter(q, match="u:*", count=1000):
            p = _decode_place(value)
            if p.p == 1 and p.s is not None:
                out[text(field)[2:]] = p.s
        return out


@dataclass
class AdmitterStats:
    ticks: int = 0
    admitted: int = 0
    lost: int = 0
    openings: int = 0
    errors: int = 0


class Admitter:
    """Calls the admit script for every queue, every ``interval_s`` while queues exist
    (the default 0.2 s turns a freed ticket into an admission within ~0.2 s plus a round
    trip), opens queues at ``abreEn``, and marks silent buyers lost once a second.
    Idempotent and safe to run in any number of processes: the scripts decide."""

    def __init__(
        self,
        queues: QueueEngine,
        interval_s: float = 0.2,
        idle_s: float = 1.0,
        lost_every_s: float = 1.0,
        stats: AdmitterStats | None = None,
    ) -> None:
        self.queues = queues
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.lost_every_s = lost_every_s
        self.stats = stats or AdmitterStats()
        self.owner = f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(4)}"
        self._states: dict[str, str] = {}
        self._last_lost = 0.0
        self.wake = asyncio.Event()

    async def tick(self) -> int:
        """One pass over every queue; the admissions made."""
        ids = await self.queues.queue_ids()
        now = time.monotonic()
        sweep_lost = now - self._last_lost >= self.lost_every_s
        if sweep_lost:
            self._last_lost = now
        admitted = 0
        for event_id in ids:
            try:
                admitted += await self._tick_event(event_id, sweep_lost)
            except Exception as e:  # one queue's failure must not stop the others
                self.stats.errors += 1
                log.warning("admitter: queue %s: %s", event_id, e)
        for gone in set(self._states) - set(ids):
            del self._states[gone]
        self.stats.ticks += 1
        self.stats.admitted += admitted
        return admitted

    async def _tick_event(self, event_id: str, sweep_lost: bool) -> int:
        due = self._states.get(event_id, "PRE") in ("PRE", "OPENING")
        if due and await self.queues.open_if_due(event_id, self.owner) is not None:
            self.stats.openings += 1
        if sweep_lost:
            self.stats.lost += await self.queues.expire_lost(event_id)
        admitted = 0
        for _ in range(10):  # bounded: each call admits up to ADMIT_BATCH
            result = await self.queues.admit(event_id)
            self._states[event_id] = result.state
            admitted += result.admitted
            if result.admitted < ADMIT_BATCH:
                break
        return admitted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            busy = False
            try:
                await self.tick()
                busy = bool(self._states)
            except Exception as e:
                self.stats.errors += 1
                log.warning("admitter: %s", e)
            self.wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    _first(stop, self.wake), self.interval_s if busy else self.idle_s
                )


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
