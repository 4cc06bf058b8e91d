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
import sys
from collections.abc import Sequence

from api.settings import Settings, SettingsError, load_settings


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


def cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings()
    from api.runtime import ensure_redis, make_engine, redis_client
    from engine.audit import audit

    url, server = ensure_redis(settings)

    async def run() -> int:
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
        return asyncio.run(run())
    finally:
        if server:
            server.stop()


def cmd_sweeper(args: argparse.Namespace) -> int:
    settings = _settings()
    _logging(settings)
    from api.runtime import ensure_redis, make_engine, redis_client
    from engine.expiry import ExpiryListener, Sweeper

    url, server = ensure_redis(settings)

    async def run() -> None:
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

    try:
        asyncio.run(run())
    finally:
        if server:
            server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onsale", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
