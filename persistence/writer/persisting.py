"""The order writer's store policy: :class:`OrderPersister` upserts a batch of valid
orders (highest version per order) and never gives up on one. A store outage
(``StoreUnavailable``) is waited out with capped exponential backoff; a batch the store
refuses (``StoreError``) is written order by order, and the orders it refuses are retried
with backoff until it takes them (logged at most every ``REFUSAL_LOG_INTERVAL_S``).
Stopping the writer meanwhile raises :class:`WriterStopped`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from engine.models import Order
from persistence.aio import AsyncStore
from persistence.errors import StoreError, StoreUnavailable
from persistence.store import latest_versions
from persistence.writer.lag import WriterStats

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL_S = 30.0  # a store refusing a valid order is logged at most this often


class WriterStopped(Exception):
    """Stop was requested while a batch waited for the store (its entries stay pending)."""


class OrderPersister:
    """Writes the writer's batches to ``store``; ``sleep(seconds)`` is the writer's
    backoff wait, True when stop was requested meanwhile."""

    def __init__(
        self,
        store: AsyncStore,
        stats: WriterStats,
        sleep: Callable[[float], Awaitable[bool]],
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        self.store = store
        self.stats = stats
        self._sleep = sleep
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s

    async def persist(self, orders: list[Order]) -> int:
        """Upsert one batch of valid orders; returns the orders written. Nothing here is
        poison (that was triaged before), so nothing is given up on: ``StoreUnavailable``
        is waited out with backoff; a batch the store refuses (``StoreError``) is written
        order by order, so every order the store takes is stored, and the ones it refuses
        are retried with backoff until it takes them (a store that refuses a valid order
        is misconfigured or broken: the lag in /health/ready shows it, and the error is
        logged). Stopping raises :class:`WriterStopped` (the entries stay pending)."""
        latest = latest_versions(orders)
        try:
            return await self._upsert_retrying(latest)
        except StoreError as e:  # not StoreUnavailable: that one is waited out
            log.warning("store refused a batch of %d (%s); writing one by one", len(latest), e)
        written = 0
        refused: list[Order] = []
        for order in latest:
            try:
                written += await self._upsert_retrying([order])
            except StoreError:
                refused.append(order)
        for order in refused:
            written += await self._upsert_retrying([order], refusals=True)
        return written

    async def _upsert_retrying(self, orders: list[Order], *, refusals: bool = False) -> int:
        """Upsert, waiting out ``StoreUnavailable`` (and, with ``refusals``, any
        ``StoreError``) with capped exponential backoff."""
        delay = self.backoff_initial_s
        logged = 0.0
        while True:
            try:
                return await self.store.upsert_orders(orders)
            except StoreUnavailable as e:
                self.stats.store_retries += 1
                log.warning("store unavailable, retrying in %.2fs: %s", delay, e)
            except StoreError as e:
                if not refusals:
                    raise
                self.stats.store_retries += 1
                self.stats.store_refusals += 1
                if time.monotonic() - logged >= REFUSAL_LOG_INTERVAL_S:
                    logged = time.monotonic()
                    ids = ", ".join(o.id for o in orders[:5])
                    log.error("store refuses %s, retrying (never dead-lettered): %s", ids, e)
            if await self._sleep(delay):
                raise WriterStopped
            delay = min(delay * 2, self.backoff_max_s)
