"""The one Redis client factory: how every onsale process connects to Redis.

The API workers, ``onsale writer``, ``onsale sweeper``/``audit``/``seed`` and the tests
that must behave like them build their client here, so the retry policy and the
redis-py 8 workarounds are decided once.
"""

from __future__ import annotations

import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

DEFAULT_MAX_CONNECTIONS = 256
# Every command is bounded: a stalled Redis (DEBUG SLEEP, SIGSTOP, a slow fsync) fails it
# with TimeoutError after this long instead of hanging the caller (REDIS_TIMEOUT_S).
DEFAULT_TIMEOUT_S = 2.0


def _driver_info() -> DriverInfo:
    """The client's name and version for ``CLIENT SETINFO``, given once: without it every
    new connection asks ``importlib.metadata`` for redis-py's version (it reads and parses
    the package's METADATA file), ~265 us a connection against ~10 us. A burst that grows
    the pool (the first sold-out refusals of a sale, each a call of its own) made ~100 of
    them at once in each worker (py-spy)."""
    return DriverInfo(lib_version=redis.__version__)


def redis_client(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> Redis:
    """An asyncio client for ``url``: a :class:`RedisCluster` when ``cluster`` (typed as
    :class:`Redis`, whose command methods it shares), else a pooled :class:`Redis`."""
    if cluster:
        # Retries ride out a failover: the client re-reads the topology between attempts.
        client = RedisCluster.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 10),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            driver_info=_driver_info(),
        )
        return client  # type: ignore[return-value]
    # Maintenance notifications (on by default in redis-py 8) make the pool skip its check
    # for dead connections, so every pooled connection failed its first command after a
    # Redis restart. Retries are safe: every script is idempotent by its request id.
    return Redis.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        # A refused or reset connection (a restart) is retried; a timeout is not: Redis is
        # there but stalled, and retrying multiplied the wait (4 x the timeout, and 17 s
        # for 5 concurrent calls with a 1 s timeout, as each retry reconnected).
        retry=Retry(
            ExponentialBackoff(cap=0.5, base=0.02), 3, supported_errors=(RedisConnectionError,)
        ),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        driver_info=_driver_info(),
    )
