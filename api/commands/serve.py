"""``onsale serve``: the API and the WebSocket under uvicorn (``--workers N``), on PORT
and, when set, WS_PORT too; the start-up banner; prometheus_client's multiprocess
directory for several workers.

The ports are bound first, before anything else is touched: a second ``onsale serve``
started by mistake on a port in use (on the same DATA_DIR or not) stops there with one
line, and the running server's metric files, Redis, store and sockets are left as they
are. Several servers on one DATA_DIR and different ports are a supported deployment
(several API processes on one store, docs/scaling.md): each keeps its multiprocess files
in a directory of its own, ``DATA_DIR/prometheus/<PORT>``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from api.commands.common import (
    check_mongodb,
    configure_logging,
    prepare_shared_env,
    redacted,
    redis_or_exit,
    refuse_seed_in_production,
    seed_demo,
    settings_or_exit,
)
from api.settings import Settings

LISTEN_BACKLOG = 2048  # uvicorn's default --backlog, which it applies again when serving


def _metrics_dir(settings: Settings, workers: int, port: int) -> None:
    """prometheus_client's multiprocess mode for ``--workers N`` (N > 1), or when
    PROMETHEUS_MULTIPROC_DIR is set: its directory (default ``DATA_DIR/prometheus/<PORT>``,
    one per server, as several may share a DATA_DIR), named in the environment every
    worker inherits, with the files of the last run removed: those of processes no longer
    alive, never those of a live one (another server given the same directory). Before
    anything imports prometheus_client, which picks its value store at import."""
    import os

    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not configured and workers <= 1:
        return
    directory = Path(configured) if configured else settings.data_dir / "prometheus" / str(port)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # the counts of the last run
        if not _live_process_file(stale):
            stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


def _live_process_file(path: Path) -> bool:
    """Whether a multiprocess file (``<kind>_<pid>.db``) is a live process's, other than
    this one (in a container a restart often gets the last run's pid). A zombie is dead:
    the workers of a supervisor killed with them stay zombies until some init reaps them."""
    import os

    from api.processes import process_alive

    pid = path.stem.rsplit("_", 1)[-1]
    if not pid.isdigit() or int(pid) in (0, os.getpid()) or not process_alive(int(pid)):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # gone since; or no /proc (not Linux): as os.kill said
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    args.workers = _workers(settings, args.workers)
    host = args.host or settings.host
    port = args.port or settings.port
    where = f"--port {port}" if args.port else f"PORT={port}"
    sockets = [_listen(host, port, where)]  # before anything is touched
    try:
        if settings.ws_port is not None and settings.ws_port != port:
            sockets.append(_listen(host, settings.ws_port, f"WS_PORT={settings.ws_port}"))
        return _start(settings, args, host, port, sockets)
    finally:
        for sock in sockets:
            sock.close()


def _start(
    settings: Settings,
    args: argparse.Namespace,
    host: str,
    port: int,
    sockets: list[socket.socket],
) -> int:
    _metrics_dir(settings, args.workers, port)
    if args.seed:
        refuse_seed_in_production(settings, "serve --seed")
    check_mongodb(settings)
    log_config = configure_logging(settings)
    import uvicorn

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_shared_env(settings)
    url, server = redis_or_exit(settings)
    try:
        if args.seed:
            asyncio.run(seed_demo(settings, url))
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
            # uvicorn's httptools protocol, telling the app when the graceful shutdown
            # begins (api/http_protocol.py: parked Socket.IO long-polls are answered then,
            # not at the timeout) and serving the lean hold below the ASGI layer
            # (api/hot_http.py) when it is on.
            "http": (
                "api.hot_http:HotHttpProtocol"
                if settings.hot_hold
                else "api.http_protocol:HttpProtocol"
            ),
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
            # For requests at work (a hold waiting for Redis); idle long-polls are
            # answered as the shutdown begins.
            "timeout_graceful_shutdown": 10,
        }
        if len(sockets) > 1:
            logging.getLogger("onsale").info(
                "/ws and /socket.io/ also on port %d", settings.ws_port
            )
        return _run(uvicorn.Config("api.app:app_from_env", **options), sockets)
    finally:
        if server:
            server.stop()


def _workers(settings: Settings, flag: int | None) -> int:
    """``--workers``, else WEB_CONCURRENCY, else one per usable core (api.settings). Put
    back into WEB_CONCURRENCY for every worker: each worker's settings then say how many
    share the port (api/realtime/affinity.py forwards Socket.IO sessions between them)."""
    import os

    workers = settings.workers if flag is None else flag
    if workers < 1:
        print(f"onsale: --workers {workers}: expected 1 or more", file=sys.stderr)
        raise SystemExit(2)
    os.environ["WEB_CONCURRENCY"] = str(workers)
    return workers


def _banner(settings: Settings, host: str, port: int, redis_url: str, args: Any) -> None:
    """Where everything is, once, before uvicorn starts: the page, the OpenAPI document,
    the demo accounts (with --seed), the data directory, Redis and the store."""
    from api.logs import banner
    from api.seed import USERS

    shown = "localhost" if host in ("0.0.0.0", "::") else host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"
    redis = redis_url if settings.redis_url else f"embedded redis-server, {redis_url}"
    store = (
        f"MongoDB {redacted(settings.mongodb_uri)}"
        if settings.mongodb_uri
        else f"embedded SQLite, {settings.data_dir / 'onsale.db'}"
    )
    lines = [
        f"onsale {settings.app_env}: serving on {base} (listening on {host}:{port}, "
        f"{args.workers} worker{'s' if args.workers != 1 else ''})",
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
        redis=redacted(redis_url),
        store="mongodb" if settings.mongodb_uri else "sqlite",
        demo_accounts=[email for email, _ in demo],
    )


def _run(config: Any, sockets: list[socket.socket]) -> int:
    """uvicorn on the sockets bound by :func:`cmd_serve` (PORT, and WS_PORT when set).

    uvicorn serves every listening socket it is handed with the same app, in one event
    loop: one lifespan, one hub, one set of background tasks, so a client on either port
    joins the same rooms. Signals, graceful shutdown and ``--workers`` (uvicorn's
    ``Multiprocess`` supervisor) work as under ``uvicorn.run``, which binds the port only
    after the app's start-up (one worker) instead.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    return 0 if config.workers > 1 or server.started else 3


def _listen(host: str, port: int, where: str) -> socket.socket:
    """A bound, listening, inheritable TCP socket, as uvicorn's own ``Config.bind_socket``
    makes (SO_REUSEADDR) but listening at once: two sockets with SO_REUSEADDR may both bind
    a port nobody listens on yet, so a second server would find out only later, at
    ``listen``, after its start-up. A port in use is one line and exit 3."""
    import errno

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = e.strerror or str(e)
        if e.errno == errno.EADDRINUSE:
            reason += " (another server is running there; nothing was changed)"
        print(f"onsale: cannot listen on {where} ({shown}): {reason}", file=sys.stderr)
        raise SystemExit(3) from None
    sock.set_inheritable(True)
    return sock
