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

from api.settings import Settings, SettingsError, jwt_secret, load_settings

T = TypeVar("T")

# ``onsale writer``'s tuning flags, passed to persistence.writer.build_writer when given.
WRITER_TUNING = {
    "batch": "entries per read and per store write (default 500)",
    "block_ms": "how long a read waits for new entries (default 1000)",
    "min_idle_ms": "reclaim another consumer's entries idle this long (default 30000)",
    "reclaim_interval_ms": "how often idle entries are looked for (default 5000)",
}


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as e:
        print(f"onsale: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _refuse_seed_in_production(settings: Settings, command: str) -> None:
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


def _redacted(uri: str) -> str:
    """The URI without its password."""
    import re

    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", uri)


def _check_mongodb(settings: Settings) -> None:
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
        print(f"onsale: MONGODB_URI: cannot reach {_redacted(uri)}: {reason}", file=sys.stderr)
        raise SystemExit(3) from None
    finally:
        if client is not None:
            client.close()


def _logging(settings: Settings) -> dict[str, Any]:
    """This process's logging (api/logs.py: LOG_FORMAT, LOG_LEVEL); the dictionary is
    uvicorn's ``log_config``, which every ``--workers N`` child applies too."""
    from api.logs import configure

    return configure(settings.log_format, settings.log_level)


async def _until_signal(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _with_redis(settings: Settings, main: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(redis_url)`` to completion, with the embedded redis-server started first
    (and stopped after) when REDIS_URL is unset and none is running for DATA_DIR."""
    url, server = _ensure_redis(settings)
    try:
        return asyncio.run(main(url))
    finally:
        if server:
            server.stop()


def _ensure_redis(settings: Settings) -> tuple[str, Any]:
    """api.runtime.ensure_redis, with a missing or broken redis-server binary told in one
    line (exit 3) instead of a traceback."""
    from api.runtime import ensure_redis
    from engine.redis_server import RedisServerError

    try:
        return ensure_redis(settings)
    except RedisServerError as e:
        print(f"onsale: embedded Redis (REDIS_URL unset): {e}", file=sys.stderr)
        raise SystemExit(3) from None


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
    from engine.queue import Admitter, QueueEngine

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        redis = redis_client(url, settings)
        engine = make_engine(redis, settings)
        await engine.start()
        tasks = [
            Sweeper(engine, settings.sweep_interval_s).run(stop),
            Admitter(QueueEngine(engine), settings.admit_interval_s).run(stop),
        ]
        if not args.no_listener:
            tasks.append(ExpiryListener(engine).run(stop))
        await asyncio.gather(*tasks)
        await redis.aclose()

    _with_redis(settings, run)
    return 0


def cmd_queue_verify(args: argparse.Namespace) -> int:
    """Recompute an admission queue's opening order from its revealed seed and join list
    and compare it with the places the server gave (docs/queue.md). Exit 0 when they
    match, 1 on any difference, 2 when there is nothing to check yet."""
    settings = _settings()
    from api.runtime import make_engine, redis_client
    from engine.queue import QueueEngine, commitment_of, opening_order

    async def run(url: str) -> int:
        redis = redis_client(url, settings)
        try:
            queues = QueueEngine(make_engine(redis, settings))
            info = await queues.info(args.event)
            if info is None or info.seed is None:
                print(f"queue verify: {args.event}: no queue, or its seed is not revealed yet")
                return 2
            members = await queues.join_list(args.event)
            placed = await queues.opening_places(args.event)
        finally:
            await redis.aclose()
        problems = []
        if commitment_of(info.seed) != info.commitment:
            problems.append("sha256(semilla) != compromisoSemilla")
        for rank, user_id in enumerate(opening_order(info.seed, members), 1):
            got = placed.get(user_id)
            if got is not None and got != rank:
                problems.append(f"{user_id}: expected place {rank}, server gave {got}")
        extra = set(placed) - set(members)
        problems += [f"{u}: placed by the opening but not in the join list" for u in extra]
        print(
            f"queue verify: {args.event}: {len(members)} in the join list, "
            f"{len(placed)} placed by the opening (others left or were lost), "
            f"{len(problems)} differences"
        )
        for problem in problems[:50]:
            print(f"  DIFFERENCE {problem}")
        return 1 if problems else 0

    return _with_redis(settings, run)


def _prepare_shared_env(settings: Settings) -> None:
    """Values every worker process must share: the JWT secret of a development run, made
    once here (DATA_DIR/jwt-secret) before the workers start, and kept across restarts."""
    try:
        jwt_secret(settings)
    except SettingsError as e:
        print(f"onsale: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


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
        await seed(store, engine, passwords)  # logs its result (api.seed), once
    finally:
        passwords.close()
        await store.close()
        await redis.aclose()


def cmd_seed(args: argparse.Namespace) -> int:
    settings = _settings()
    _refuse_seed_in_production(settings, "seed")
    _check_mongodb(settings)
    _logging(settings)
    _with_redis(settings, lambda url: _seed(settings, url))
    return 0


def cmd_writer(args: argparse.Namespace) -> int:
    """Run one order writer until SIGTERM/SIGINT (the batch in hand is finished)."""
    settings = _settings()
    _check_mongodb(settings)
    _logging(settings)
    from api.runtime import redis_client
    from persistence.aio import AsyncStore
    from persistence.factory import open_store
    from persistence.writer import build_writer, replay_dead_letters

    if args.replay_dead:  # put the dead letters back into their order logs, and exit

        async def replay(url: str) -> None:
            redis = redis_client(url, settings)
            try:
                done = await replay_dead_letters(redis)
            finally:
                await redis.aclose()
            print(
                f"writer: replayed {done.replayed} dead letters into their order logs, "
                f"{done.kept} left (still not a valid order)"
            )

        _with_redis(settings, replay)
        return 0

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


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Run one webhook dispatcher until SIGTERM/SIGINT (attempts in hand finish)."""
    settings = _settings()
    _check_mongodb(settings)
    _logging(settings)
    from api.runtime import make_engine, redis_client
    from api.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
    from persistence.aio import AsyncStore
    from persistence.factory import open_store
    from persistence.webhooks import AsyncWebhookStore, open_webhook_store

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await _until_signal(stop)
        redis = redis_client(url, settings)
        engine = make_engine(redis, settings)
        await engine.start()
        store = AsyncStore(open_store(settings.mongodb_uri, settings.data_dir))
        hooks = AsyncWebhookStore(open_webhook_store(settings.mongodb_uri, settings.data_dir))
        dispatcher = WebhookDispatcher(
            redis, engine, hooks, store, DispatchConfig.from_settings(settings), name=args.name
        )
        try:
            await dispatcher.run(stop)
        finally:
            await hooks.close()
            await store.close()
            await redis.aclose()

    _with_redis(settings, run)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.seed:
        _refuse_seed_in_production(settings, "serve --seed")
    _check_mongodb(settings)
    log_config = _logging(settings)
    import uvicorn

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _prepare_shared_env(settings)
    url, server = _ensure_redis(settings)
    try:
        if args.seed:
            asyncio.run(_seed(settings, url))
        host = args.host or settings.host
        port = args.port or settings.port
        _banner(settings, host, port, url, args)
        options: dict[str, Any] = {
            "factory": True,
            "host": host,
            "port": port,
            "workers": args.workers,
            "log_level": settings.log_level,
            "log_config": log_config,
            "access_log": args.access_log or settings.access_log,
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
            logging.getLogger("onsale").info(
                "/ws and /socket.io/ also on port %d", settings.ws_port
            )
            config = uvicorn.Config("api.app:app_from_env", **options)
            return _serve_on_two_ports(config, settings.ws_port)
        uvicorn.run("api.app:app_from_env", **options)
    finally:
        if server:
            server.stop()
    return 0


def _banner(settings: Settings, host: str, port: int, redis_url: str, args: Any) -> None:
    """Where everything is, once, before uvicorn starts: the page, the OpenAPI document,
    the demo accounts (with --seed), the data directory, Redis and the store."""
    from api.logs import banner
    from api.seed import USERS

    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    redis = redis_url if settings.redis_url else f"embedded redis-server, {redis_url}"
    store = (
        f"MongoDB {_redacted(settings.mongodb_uri)}"
        if settings.mongodb_uri
        else f"embedded SQLite, {settings.data_dir / 'onsale.db'}"
    )
    lines = [
        f"onsale {settings.app_env}: serving on {base} (listening on {host}:{port})",
        f"  page      {base}/",
        f"  OpenAPI   {base}/schema  (browse: {base}/schema/scalar, {base}/schema/swagger)",
        f"  data      {settings.data_dir.resolve()}  (DATA_DIR)",
        f"  redis     {redis}",
        f"  store     {store}",
    ]
    demo = [(email, password) for _, email, password, _ in USERS] if args.seed else []
    accounts = [f"{email} / {password}" for email, password in demo]
    if accounts:
        lines.append(f"  demo      {', '.join(accounts)}")
    banner(
        settings.log_format,
        lines,
        url=f"{base}/",
        schema=f"{base}/schema",
        listen=f"{host}:{port}",
        workers=args.workers,
        data_dir=str(settings.data_dir.resolve()),
        redis=_redacted(redis_url),
        store="mongodb" if settings.mongodb_uri else "sqlite",
        demo_accounts=[email for email, _ in demo],
    )


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
    p.add_argument(
        "--replay-dead",
        action="store_true",
        help="move the dead letters back into their order logs (the writers store them), "
        "print how many, and exit",
    )
    for name, help_text in WRITER_TUNING.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=help_text)
    p.set_defaults(func=cmd_writer)

    p = sub.add_parser("webhooks", help="deliver the webhooks (own consumer group)")
    p.add_argument("--name", default=None, help="consumer name (default host-pid)")
    p.set_defaults(func=cmd_webhooks)

    p = sub.add_parser("audit", help="check available + held + sold == total everywhere")
    p.add_argument("--event", action="append", help="only this event (repeatable)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("sweeper", help="release expired holds (listener + sweeper)")
    p.add_argument("--no-listener", action="store_true", help="sweeper only")
    p.set_defaults(func=cmd_sweeper)

    p = sub.add_parser("queue", help="admission queues")
    queue_sub = p.add_subparsers(dest="queue_command", required=True)
    v = queue_sub.add_parser(
        "verify", help="recompute a queue's opening order from its revealed seed and compare"
    )
    v.add_argument("event", help="event id")
    v.set_defaults(func=cmd_queue_verify)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
