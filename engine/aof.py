"""Compacting the embedded redis-server's AOF between sales, not during them.

Redis rewrites its AOF by itself once it has doubled (``auto-aof-rewrite-percentage
100``, from 64 MB): a forked child writes the whole dataset while the server keeps a
rewrite buffer. A 50,000-ticket flash sale on ``make run`` grew the AOF past that twice,
and the two rewrites in the middle of the sale took a core's worth of CPU from the API
workers on this 2-core machine: p99 of the holds 60-65 ms with them, 47 ms without
(``python -m loadtest.bench_sale``). The embedded server therefore runs with Redis's own
trigger off and this compactor beside it, which asks for the same rewrite
(``BGREWRITEAOF``) when the AOF has grown as much *and* Redis has been quiet for a moment,
and regardless once it has grown four times over, so the file stays bounded during a long
sale too.

A Redis the operator runs (``REDIS_URL``) is theirs to configure: the same policy is
``auto-aof-rewrite-percentage 0`` plus a cron'd ``BGREWRITEAOF``, or a larger
``auto-aof-rewrite-min-size`` (docs/reliability.md).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True)
class AofPolicy:
    """When to rewrite: grown by ``growth`` over the last rewrite's size (and at least
    ``min_size``), and quiet (fewer than ``quiet_ops`` commands a second for ``quiet_checks``
    checks in a row); or grown to ``force_factor`` times that, whatever the traffic."""

    min_size: int = 64 * MIB  # Redis's auto-aof-rewrite-min-size
    growth: float = 1.0  # Redis's auto-aof-rewrite-percentage 100
    quiet_ops: int = 500
    quiet_checks: int = 2
    force_factor: float = 4.0
    interval_s: float = 2.0


def rewrite_reason(info: dict[str, Any], policy: AofPolicy, quiet_for: int) -> str | None:
    """``"quiet"`` or ``"bound"`` when the AOF should be rewritten now (INFO persistence
    and stats fields in ``info``; ``quiet_for`` = quiet checks in a row), else None."""
    if not int(info.get("aof_enabled", 0)):
        return None
    if int(info.get("aof_rewrite_in_progress", 0)) or int(info.get("aof_rewrite_scheduled", 0)):
        return None
    current = int(info.get("aof_current_size", 0))
    base = max(int(info.get("aof_base_size", 0)), policy.min_size)
    if current >= base * policy.force_factor:
        return "bound"
    if current >= policy.min_size and current >= base * (1 + policy.growth):
        return "quiet" if quiet_for >= policy.quiet_checks else None
    return None


class AofCompactor:
    """A daemon thread beside the embedded server (``onsale serve``'s main process):
    one ``INFO`` every ``policy.interval_s``, a ``BGREWRITEAOF`` when
    :func:`rewrite_reason` says so."""

    def __init__(self, url: str, policy: AofPolicy | None = None) -> None:
        self.policy = policy or AofPolicy()
        self.client = Redis.from_url(url, socket_timeout=5, decode_responses=True)
        self.rewrites = 0
        self._quiet_for = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aof-compactor", daemon=True)

    def start(self) -> AofCompactor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.policy.interval_s + 5)
        self.client.close()

    def check(self) -> str | None:
        """One look; the reason of the rewrite it asked for, if any."""
        info = {**self.client.info("persistence"), **self.client.info("stats")}
        ops = int(info.get("instantaneous_ops_per_sec", 0))
        self._quiet_for = self._quiet_for + 1 if ops < self.policy.quiet_ops else 0
        reason = rewrite_reason(info, self.policy, self._quiet_for)
        if reason is None:
            return None
        try:
            self.client.bgrewriteaof()
        except ResponseError as e:  # one already running or scheduled: nothing to do
            log.debug("BGREWRITEAOF refused: %s", e)
            return None
        self.rewrites += 1
        log.info(
            "AOF rewrite started (%s): %d MB, %d MB after the last one",
            reason,
            int(info["aof_current_size"]) // MIB,
            int(info["aof_base_size"]) // MIB,
        )
        return reason

    def _run(self) -> None:
        while not self._stop.wait(self.policy.interval_s):
            try:
                self.check()
            except (RedisError, OSError) as e:  # the server stopping, or stalled: next time
                log.debug("AOF compactor: %s", e)
