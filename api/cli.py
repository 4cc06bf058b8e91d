"""The ``onsale`` command line: serve, seed, writer, sweeper, audit.

argparse keeps start-up cheap and the dependency list short; heavy imports happen inside
each command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from api.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

# ``onsale writer``'s tuning flags, passed to persistence.writer.build_writer when given.
WRITER_TUNING = {
    "batch": "entries per read and per store write (default 500)",
    "block_ms": "how long a read waits for new entries (default 1000)",
    "min_idle_ms": "reclaim another consumer's entries idle this long (default 30000)",
    "reclaim_interval_ms": "how often idle entries are looked for (default 5000)",
    "max_deliveries": "dead-letter an entry delivered more often (default 5)",
}


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        print(f"onsale: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )


async def _until_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _with_redis(settings: Settings, main: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(redis_url)`` to completion, with the embedded redis-server started first
    (and stopped after) when REDIS_URL is unset and none is running for DATA_DIR."""
    from api.runtime import ensure_redis

    url, server = ensure_redis(settings)
    try:
        return asyncio.run(main(url))
    finally:
        if server:
            server.stop()


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 on any violation, 3 when Redis cannot be reached."""
    from redis.exceptions import RedisError

    settings = _settings()
    from api.runtime import make_engine, redis_client
    from engine.audit import audit

    async def run(url: str) -> int:
        redis = redis_client(url, settings)
        try:
            engine = make_engine(redis, settings)
            report = await audit(engine, args.event or None)
        finally:
            await redis.aclose()
        print(
            f"audit: {report.events} events, {report.categories} categories, "
            f"{report.orders} orders, {len(report.violations)} violations"
        )
        for v in report.violations:
            print(f"  VIOLATION event={v.event_id} category={v.category_id}: {v.problem}")
        return 0 if report.clean else 1

    try:
        return _with_redis(settings, run)
    except (RedisError, OSError) as e:
        print(f"onsale audit: cannot reach Redis: {e}", file=sys.stderr)
        return 3


def cmd_sweeper(args: argparse.Namespace) -> int:
    settings = _settings()
    _logging(settings)
    from api.runtime import make_engine, redis_client
    from engine.expiry import ExpiryListener, Sweeper

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        redis = redis_client(url, settings)
        engine = make_engine(redis, settings)
        await engine.start()
        tasks = [Sweeper(engine, settings.sweep_interval_s).run(stop)]
        if not args.no_listener:
            tasks.append(ExpiryListener(engine).run(stop))
        await asyncio.gather(*tasks)
        await redis.aclose()

    _with_redis(settings, run)
    return 0


def _prepare_shared_env(settings: Settings) -> None:
    """Values every worker process must share: the JWT secret of a development run."""
    import os

    if not os.environ.get("JWT_SECRET"):
        os.environ["JWT_SECRET"] = settings.jwt_secret


async def _seed(settings: Settings, url: str) -> None:
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
        report = await seed(store, engine, passwords)
        print(f"seed: {report.users_created} users, {report.events_created} events created")
    finally:
        passwords.close()
        await store.close()
        await redis.aclose()


def cmd_seed(args: argparse.Namespace) -> int:
    settings = _settings()
    _logging(settings)
    _with_redis(settings, lambda url: _seed(settings, url))
    return 0


def cmd_writer(args: argparse.Namespace) -> int:
    """Run one order writer until SIGTERM/SIGINT (the batch in hand is finished)."""
    settings = _settings()
    _logging(settings)
    from api.runtime import redis_client
    from persistence.aio import AsyncStore
    from persistence.factory import open_store
    from persistence.writer import build_writer

    tuning = {name: value for name in WRITER_TUNING if (value := getattr(args, name)) is not None}

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        redis = redis_client(url, settings)
        store = AsyncStore(open_store(settings.mongodb_uri, settings.data_dir))
        writer = build_writer(
            redis, store, name=args.name, linger_ms=settings.writer_linger_ms, **tuning
        )
        try:
            await writer.run(stop)
        finally:
            await store.close()
            await redis.aclose()

    _with_redis(settings, run)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    _logging(settings)
    import uvicorn

    from api.runtime import ensure_redis

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _prepare_shared_env(settings)
    url, server = ensure_redis(settings)
    try:
        if args.seed:
            asyncio.run(_seed(settings, url))
        host = args.host or settings.host
        port = args.port or settings.port
        print(
            f"onsale: serving on http://{host}:{port} (redis {url}, "
            f"store {'mongodb' if settings.mongodb_uri else settings.data_dir / 'onsale.db'})",
            flush=True,
        )
        options: dict[str, Any] = {
            "factory": True,
            "host": host,
            "port": port,
            "workers": args.workers,
            "log_level": settings.log_level,
            "access_log": args.access_log,
            "lifespan": "on",
            "ws_max_size": 64 * 1024,
            # The sans-I/O websockets protocol: ~20 % more frames/s than the legacy
            # asyncio one at 5,000 subscribers (loadtest/bench_ws.py), same ping/timeout.
            "ws": "websockets-sansio",
            # Compression cost ~40 KB per connection and CPU on every frame; stock frames
            # are small and many.
            "ws_per_message_deflate": False,
            # X-Forwarded-For is believed only from the proxies named in TRUSTED_PROXIES:
            # otherwise any local client could pick its rate-limit address.
            "proxy_headers": bool(settings.trusted_proxies),
            "forwarded_allow_ips": settings.trusted_proxies or None,
            "ws_ping_interval": 20,
            "ws_ping_timeout": 20,
            "timeout_graceful_shutdown": 10,
        }
        if settings.ws_port is not None and settings.ws_port != port:
            print(f"onsale: /ws and /socket.io/ also on port {settings.ws_port}", flush=True)
            config = uvicorn.Config("api.app:app_from_env", **options)
            return _serve_on_two_ports(config, settings.ws_port)
        uvicorn.run("api.app:app_from_env", **options)
    finally:
        if server:
            server.stop()
    return 0


def _serve_on_two_ports(config: Any, ws_port: int) -> int:
    """PORT and WS_PORT (the original's 3001) served by one uvicorn server per worker.

    uvicorn serves every listening socket it is handed with the same app, in one event
    loop: one lifespan, one hub, one set of background tasks, so a client on either port
    joins the same rooms. Signals, graceful shutdown and ``--workers`` work as usual.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sockets = [config.bind_socket(), _listen(config.host, ws_port)]
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in sockets:
            sock.close()
    return 0 if config.workers > 1 or server.started else 3


def _listen(host: str, port: int) -> socket.socket:
    """A bound, inheritable TCP socket, as uvicorn's own ``Config.bind_socket`` makes."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        print(f"onsale: cannot listen on WS_PORT={port}: {e}", file=sys.stderr)
        raise SystemExit(3) from None
    sock.set_inheritable(True)
    return sock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onsale", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the API and WebSocket (uvicorn)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--seed", action="store_true", help="create the demo data first (once)")
    p.add_argument("--access-log", action="store_true")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("seed", help="create the demo users and events (idempotent)")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("writer", help="persist the order streams into the store")
    p.add_argument("--name", default=None, help="consumer name (default host-pid)")
    for name, help_text in WRITER_TUNING.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=help_text)
    p.set_defaults(func=cmd_writer)

    p = sub.add_parser("audit", help="check available + held + sold == total everywhere")
    p.add_argument("--event", action="append", help="only this event (repeatable)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("sweeper", help="release expired holds (listener + sweeper)")
    p.add_argument("--no-listener", action="store_true", help="sweeper only")
    p.set_defaults(func=cmd_sweeper)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
