"""The admitter loop: every queue admitted, opened at ``abreEn`` and swept of silent
buyers, by :class:`Admitter`; one per API process and per ``onsale sweeper``, any number
at once (the scripts of :mod:`engine.queue` decide)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.queue_models import ADMIT_BATCH

if TYPE_CHECKING:
    from engine.queue import QueueEngine

log = logging.getLogger(__name__)


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
