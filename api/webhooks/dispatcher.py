"""The webhook dispatcher: order logs -> recorded deliveries -> signed POSTs.

Two loops, each its own task, sharing nothing with holds, confirms or the order writer:

* **Ingest** (:mod:`api.webhooks.ingest`). Reads every order log through its own consumer group
  (``keys.WEBHOOK_GROUP``), with the writer's stream helpers (``persistence.writer``),
  turns each entry into deliveries for the endpoints that want it, records them in the
  webhook store (insert-if-new by a stable id) and only then acknowledges. A dispatcher
  that dies leaves its entries pending; it re-reads them when it restarts under the same
  name and any dispatcher reclaims them after ``min_idle_ms``. The writer trims the logs
  behind the slowest group, so a lagging dispatcher loses nothing.
* **Deliver.** Picks due deliveries from the store (the oldest pending one of each
  endpoint and subject, so a confirm never goes before its hold), claims each with a
  lease (a dispatcher that dies mid-attempt leaves it to be retried when the lease ends),
  and POSTs it: at most ``concurrency`` attempts in flight and ``per_endpoint`` per
  endpoint, ``timeout_s`` each. A failure is retried with exponential backoff and jitter
  until ``retry_window_ms`` after the delivery was recorded, then it is FAILED; an
  endpoint failing ``disable_failures`` times in a row over ``disable_after_ms`` is
  disabled, with the reason in its GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis

from api.webhooks import signing, urls
from api.webhooks.ingest import WebhookIngest, now_ms, pause
from engine.core import Engine
from persistence.aio import AsyncStore
from persistence.errors import StoreError
from persistence.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    AsyncWebhookStore,
    Attempt,
    Delivery,
    WebhookEndpoint,
)
from persistence.writer import consumer_name
from persistence.writer.companions import enable_webhooks
from persistence.writer.streams import order_logs

log = logging.getLogger(__name__)

_LOG_SOURCE = "log"


@dataclass(frozen=True)
class DispatchConfig:
    policy: urls.UrlPolicy = field(default_factory=lambda: urls.UrlPolicy(False, False))
    timeout_s: float = 10.0
    retry_window_ms: int = 24 * 3_600_000
    retry_base_s: float = 5.0
    retry_max_s: float = 3600.0
    concurrency: int = 32
    per_endpoint: int = 8
    disable_failures: int = 20
    disable_after_ms: int = 24 * 3_600_000
    batch: int = 200
    block_ms: int = 1_000
    poll_s: float = 0.25
    min_idle_ms: int = 30_000
    reclaim_interval_s: float = 5.0
    refresh_streams_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DispatchConfig:
        values: dict[str, Any] = {
            "policy": urls.UrlPolicy.of(settings.production, settings.webhook_allow_private),
            "timeout_s": settings.webhook_timeout_s,
            "retry_window_ms": int(settings.webhook_retry_hours * 3_600_000),
            "retry_base_s": settings.webhook_retry_base_s,
            "retry_max_s": settings.webhook_retry_max_s,
            "concurrency": settings.webhook_concurrency,
            "per_endpoint": settings.webhook_per_endpoint,
            "disable_failures": settings.webhook_disable_failures,
            "disable_after_ms": int(settings.webhook_disable_hours * 3_600_000),
        }
        values.update(overrides)
        return cls(**values)

    def retry_delay_ms(self, attempts: int) -> int:
        """Exponential (base x 2^(n-1), capped) with jitter: 50-100 % of it."""
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** min(attempts - 1, 30))
        return int(delay * (0.5 + random.random() / 2) * 1000)

    @property
    def lease_ms(self) -> int:
        """How long a claimed attempt is ours: past it (we died), it is due again."""
        return int((2 * self.timeout_s + 5) * 1000)


@dataclass
class DispatchStats:
    entries: int = 0
    recorded: int = 0
    attempts: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    failed: int = 0
    errors: int = 0


class WebhookDispatcher:
    def __init__(
        self,
        redis: Redis,
        engine: Engine,
        hooks: AsyncWebhookStore,
        store: AsyncStore,
        config: DispatchConfig | None = None,
        *,
        name: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.hooks = hooks
        self.store = store
        self.config = config or DispatchConfig()
        self.consumer = consumer_name(name)
        self.stats = DispatchStats()
        self._client = client
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_endpoint: dict[str, int] = {}
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._endpoints_at = 0.0
        self._failing: set[str] = set()  # endpoints whose last attempt here failed
        self._ingest = WebhookIngest(
            redis, engine, hooks, store, self.config, self.consumer, self.stats, self._wake.set
        )

    def wake(self) -> None:
        """New deliveries were recorded (e.g. a test message): look now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        own_client = self._client is None
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,
                timeout=httpx.Timeout(self.config.timeout_s),
                limits=httpx.Limits(
                    max_connections=self.config.concurrency, max_keepalive_connections=64
                ),
            )
        tasks = [
            asyncio.create_task(self._ingest.run(stop), name="webhooks-ingest"),
            asyncio.create_task(self._deliver_loop(stop), name="webhooks-deliver"),
        ]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            pending = list(self._inflight.values())
            if pending:  # let attempts in hand finish (bounded by their timeout)
                await asyncio.wait(pending, timeout=self.config.timeout_s + 1)
            if own_client:
                await self._client.aclose()

    # -- deliver ---------------------------------------------------------------------------

    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            try:
                # With no active endpoint nothing is delivered: only a wake (a test
                # message, deliveries recorded) makes the store scan, not every poll_s.
                if not self._ingest.idle or self._wake.is_set():
                    await self._dispatch_due()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except (StoreError, OSError) as e:
                self.stats.errors += 1
                log.warning("webhooks: delivery scan failed, retrying in %.2fs: %s", backoff, e)
                await pause(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_s)

    async def _dispatch_due(self) -> None:
        free = self.config.concurrency - len(self._inflight)
        if free <= 0:
            return
        now = now_ms()
        due = await self.hooks.due_deliveries(now, free * 2)
        if not due:
            return
        await self._refresh_endpoints()
        chosen: list[tuple[Delivery, WebhookEndpoint]] = []
        slots = dict(self._per_endpoint)
        for d in due:
            if len(self._inflight) + len(chosen) >= self.config.concurrency:
                break
            if d.id in self._inflight or slots.get(d.endpoint_id, 0) >= self.config.per_endpoint:
                continue
            endpoint = self._endpoints.get(d.endpoint_id) or await self.hooks.get_endpoint(
                d.endpoint_id
            )
            if endpoint is None or not endpoint.active:
                continue
            slots[d.endpoint_id] = slots.get(d.endpoint_id, 0) + 1
            chosen.append((d, endpoint))
        if not chosen:
            return
        won = set(
            await self.hooks.claim_deliveries(
                [(d.id, d.next_at) for d, _ in chosen], now + self.config.lease_ms
            )
        )
        for d, endpoint in chosen:
            if d.id not in won:
                continue  # another dispatcher took it
            self._per_endpoint[d.endpoint_id] = self._per_endpoint.get(d.endpoint_id, 0) + 1
            task = asyncio.create_task(self._attempt(d, endpoint), name=f"webhook-{d.id}")
            self._inflight[d.id] = task

    async def _refresh_endpoints(self) -> None:
        if time.monotonic() - self._endpoints_at < 1.0:
            return
        self._endpoints = {e.id: e for e in await self.hooks.active_endpoints()}
        self._endpoints_at = time.monotonic()

    async def _attempt(self, d: Delivery, endpoint: WebhookEndpoint) -> None:
        code: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            code = await self._post(d, endpoint)
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except urls.UnsafeUrl as e:
            error = f"{e.code}: {e}"
        except (TimeoutError, httpx.TimeoutException):
            error = "timeout"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:300]
        except Exception as e:
            error = f"{type(e).__name__}: {e}"[:300]
            log.exception("webhooks: attempt %s failed unexpectedly", d.id)
        latency = int((time.monotonic() - started) * 1000)
        ok = error is None
        try:
            await self._record(d, endpoint, ok, code, latency, error)
        except (StoreError, OSError) as e:
            # The lease ends and the delivery is tried again: at least once.
            log.warning("webhooks: could not record attempt %s: %s", d.id, e)
        finally:
            self._inflight.pop(d.id, None)
            left = self._per_endpoint.get(d.endpoint_id, 1) - 1
            if left > 0:
                self._per_endpoint[d.endpoint_id] = left
            else:
                self._per_endpoint.pop(d.endpoint_id, None)
            self._wake.set()

    async def _post(self, d: Delivery, endpoint: WebhookEndpoint) -> int:
        assert self._client is not None
        target = await urls.check(endpoint.url, self.config.policy)
        body = d.body.encode()
        headers = signing.headers(endpoint.secret, d.id, int(time.time()), body)
        url = endpoint.url
        extensions: dict[str, Any] = {}
        if target.address is not None:  # connect to the address that was checked
            url = pinned_url(endpoint.url, target.address)
            default = 443 if target.scheme == "https" else 80
            headers["host"] = (
                target.host if target.port == default else f"{target.host}:{target.port}"
            )
            if target.scheme == "https":
                extensions["sni_hostname"] = target.host
        self.stats.attempts += 1
        async with asyncio.timeout(self.config.timeout_s):
            async with self._client.stream(
                "POST", url, content=body, headers=headers, extensions=extensions
            ) as response:
                return response.status_code

    async def _record(
        self,
        d: Delivery,
        endpoint: WebhookEndpoint,
        ok: bool,
        code: int | None,
        latency: int,
        error: str | None,
    ) -> None:
        now = now_ms()
        if ok:
            status, next_at = DELIVERED, now
            self.stats.delivered += 1
        elif now - d.created_at >= self.config.retry_window_ms:
            status, next_at = FAILED, now
            self.stats.failed += 1
        else:
            status, next_at = PENDING, now + self.config.retry_delay_ms(d.attempts + 1)
            self.stats.failed_attempts += 1
        await self.hooks.record_attempt(
            d.id,
            Attempt(
                status=status, next_at=next_at, code=code, latency_ms=latency, error=error, at=now
            ),
        )
        if ok and endpoint.consecutive_failures == 0 and endpoint.id not in self._failing:
            return  # nothing to reset (the cache shows another process's failures in 1 s)
        if ok:
            self._failing.discard(endpoint.id)
        else:
            self._failing.add(endpoint.id)
        disabled = await self.hooks.record_endpoint_result(
            endpoint.id,
            ok,
            now,
            disable_after_failures=self.config.disable_failures,
            disable_after_ms=self.config.disable_after_ms,
        )
        if disabled:
            log.warning("webhooks: endpoint %s disabled after repeated failures", endpoint.id)
            self._endpoints.pop(endpoint.id, None)


def pinned_url(url: str, address: str) -> str:
    """``url`` with its host replaced by ``address`` (the Host header and TLS name keep
    the original host)."""
    parts = httpx.URL(url)
    return str(parts.copy_with(host=address))


async def prepare_logs(redis: Redis) -> None:
    """Webhooks are about to be used: create our group on every order log now, so the
    writer trims nothing we have not read (an endpoint registered before any dispatcher
    started, or while none runs)."""
    logs = await order_logs(redis, scan=False)
    await enable_webhooks(redis, sorted(logs))
