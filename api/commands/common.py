"""What every ``onsale`` command starts with: the settings (a configuration error is one
line and exit 2), logging, the start-up checks (MONGODB_URI reachable, exit 3; no demo
seed in production), the embedded redis-server when REDIS_URL is unset, stopping on
SIGINT/SIGTERM, and the demo seed that ``seed`` and ``serve --seed`` share."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from api.settings import Settings, SettingsError, jwt_secret, load_settings

T = TypeVar("T")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        print(f"onsale: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def refuse_seed_in_production(settings: Settings, command: str) -> None:
    """The seed's demo accounts have published passwords (admin@test.com / Admin123!)."""
    if settings.production:
        print(
            f"onsale: {command} refused with APP_ENV=production: the demo accounts it "
            "creates have published passwords (admin@test.com / Admin123!)",
            file=sys.stderr,
        )
        raise SystemExit(2)


# The start-up reachability check of MONGODB_URI waits this long unless the URI sets its
# own serverSelectionTimeoutMS (the adapter's 5 s, then uvicorn's traceback, told nothing).
MONGODB_STARTUP_TIMEOUT_MS = 3000


def redacted(uri: str) -> str:
    """The URI without its password."""
    import re

    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", uri)


def check_mongodb(settings: Settings) -> None:
    """With MONGODB_URI set, one ping before anything starts: an unreachable server is one
    line naming the variable and exit code 3, within a few seconds."""
    uri = settings.mongodb_uri
    if not uri:
        return
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    options: dict[str, Any] = {}
    if "serverselectiontimeoutms" not in uri.lower():
        options["serverSelectionTimeoutMS"] = MONGODB_STARTUP_TIMEOUT_MS
    if "connecttimeoutms" not in uri.lower():
        options["connectTimeoutMS"] = MONGODB_STARTUP_TIMEOUT_MS
    client: MongoClient[dict[str, Any]] | None = None
    try:
        client = MongoClient(uri, **options)
        client.admin.command("ping")
    except PyMongoError as e:
        # pymongo's message carries the topology description after the reason.
        reason = str(e).split(", Timeout:")[0].split(" (configured timeouts")[0]
        reason = " ".join(reason.split())[:300]
        print(f"onsale: MONGODB_URI: cannot reach {redacted(uri)}: {reason}", file=sys.stderr)
        raise SystemExit(3) from None
    finally:
        if client is not None:
            client.close()


def configure_logging(settings: Settings) -> dict[str, Any]:
    """This process's logging (api/logs.py: LOG_FORMAT, LOG_LEVEL); the dictionary is
    uvicorn's ``log_config``, which every ``--workers N`` child applies too."""
    from api.logs import configure

    return configure(settings.log_format, settings.log_level)


async def until_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def with_redis(settings: Settings, main: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(redis_url)`` to completion, with the embedded redis-server started first
    (and stopped after) when REDIS_URL is unset and none is running for DATA_DIR."""
    url, server = redis_or_exit(settings)
    try:
        return asyncio.run(main(url))
    finally:
        if server:
            server.stop()


def redis_or_exit(settings: Settings) -> tuple[str, Any]:
    """api.runtime.ensure_redis, with a missing or broken redis-server binary told in one
    line (exit 3) instead of a traceback."""
    from api.runtime import ensure_redis
    from engine.redis_server import RedisServerError

    try:
        return ensure_redis(settings)
    except RedisServerError as e:
        print(f"onsale: embedded Redis (REDIS_URL unset): {e}", file=sys.stderr)
        raise SystemExit(3) from None


def prepare_shared_env(settings: Settings) -> None:
    """Values every worker process must share: the JWT secret of a development run, made
    once here (DATA_DIR/jwt-secret) before the workers start, and kept across restarts."""
    try:
        jwt_secret(settings)
    except SettingsError as e:
        print(f"onsale: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


async def seed_demo(settings: Settings, url: str) -> None:
    from api.runtime import make_engine, redis_client
    from api.security import Passwords
    from api.seed import seed
    from persistence.aio import AsyncStore
    from persistence.factory import open_store

    redis = redis_client(url, settings)
    engine = make_engine(redis, settings)
    await engine.start()
    store = AsyncStore(open_store(settings.mongodb_uri, settings.data_dir))
    passwords = Passwords(settings.bcrypt_rounds, settings.bcrypt_threads)
    try:
        await seed(store, engine, passwords)  # logs its result (api.seed), once
    finally:
        passwords.close()
        await store.close()
        await redis.aclose()
