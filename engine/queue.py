"""The admission queue's engine side (SPEC 10.1): configure, join, heartbeat, leave, the
fair opening, admission and lost-heartbeat expiry; the admitter loop that drives them is
:mod:`engine.admitter`, the value types and the fairness rule :mod:`engine.queue_models`.

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
import logging
import secrets
import time
from dataclasses import replace
from typing import Any

import msgspec

from engine import keys
from engine.admitter import Admitter, AdmitterStats
from engine.core import Engine
from engine.errors import refusal
from engine.queue_models import (
    ADMIT_BATCH,
    AdmitResult,
    OpeningResult,
    Place,
    QueueInfo,
    QueueSettings,
    commitment_of,
    opening_key,
    opening_order,
)
from engine.vocabulary import text

__all__ = [
    "ADMIT_BATCH",
    "AdmitResult",
    "Admitter",
    "AdmitterStats",
    "OpeningResult",
    "Place",
    "QueueEngine",
    "QueueInfo",
    "QueueSettings",
    "commitment_of",
    "opening_key",
    "opening_order",
]

log = logging.getLogger(__name__)

OPEN_BATCH = 1000  # buyers placed per place_opened call
OPEN_LEASE_MS = 30_000  # an opener silent this long is taken over
READ_CHUNK = 10_000  # join-list members read per ZRANGE
LOST_BATCH = 500  # buyers marked lost per expire_waiters call
TOUCH_BATCH = 500  # places read (and heartbeats) per touch_queue call


class _Stored(msgspec.Struct):
    """A place as the scripts store it (lua/lib/queue.lua)."""

    e: str
    j: int = 0
    s: int | None = None
    p: int | None = None
    t: str | None = None
    x: int | None = None


_decode_place = msgspec.json.Decoder(_Stored).decode


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
        # task only starts once this one waits). On a cluster the order is not kept: below.
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
        if place is None:
            # On Redis Cluster the two calls ride separate pipelines and the read can run
            # first; read again now that the join has committed (None then: left in between).
            place = (await self.places(event_id, [user_id]))[0]
        if place is None:
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
            read_ms=now,
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
