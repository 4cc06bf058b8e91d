"""Wiring shared by every CLI command: Redis (embedded or external), engine and store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from api.settings import Settings
from engine.core import Engine, EngineConfig
from engine.redis_server import RedisServer

log = logging.getLogger(__name__)

EMBEDDED_URL_ENV = "ONSALE_EMBEDDED_REDIS_URL"


def ensure_redis(settings: Settings) -> tuple[str, RedisServer | None]:
    """The Redis URL to use; starts the embedded redis-server when REDIS_URL is unset.

    The embedded server's URL is exported so worker processes share it instead of
    starting their own.
    """
    if settings.redis_url:
        return settings.redis_url, None
    inherited = os.environ.get(EMBEDDED_URL_ENV)
    if inherited:
        return inherited, None
    server = RedisServer(data_dir=Path(settings.data_dir) / "redis", port=_embedded_port())
    server.start()
    os.environ[EMBEDDED_URL_ENV] = server.url
    log.info(
        "embedded redis-server %s on %s (data in %s)", server.binary, server.url, server.data_dir
    )
    return server.url, server


def _embedded_port() -> int:
    raw = os.environ.get("EMBEDDED_REDIS_PORT", "")
    return int(raw) if raw.isdigit() else 0


def redis_client(url: str, settings: Settings, *, max_connections: int = 256) -> Redis:
    if settings.redis_cluster:
        # Retries ride out a failover: the client re-reads the topology between attempts.
        cluster = RedisCluster.from_url(
            url,
            max_connections=max_connections,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 10),
        )
        return cluster  # type: ignore[return-value]
    return Redis.from_url(url, max_connections=max_connections, health_check_interval=30)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        hold_ttl_ms=settings.hold_ttl_ms,
        max_per_order=settings.max_tickets_per_order,
        low_stock_threshold=settings.low_stock_threshold,
    )


def make_engine(redis: Redis, settings: Settings) -> Engine:
    return Engine(redis, engine_config(settings))
