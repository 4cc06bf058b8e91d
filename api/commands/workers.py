"""The long-running background processes: ``onsale sweeper`` (expiry listener,
sweeper and queue admitter), ``onsale writer`` (the order writer, or ``--replay-dead``)
and ``onsale webhooks`` (the webhook dispatcher); each runs until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio

from api.commands.common import (
    check_mongodb,
    configure_logging,
    settings_or_exit,
    until_signal,
    with_redis,
)

# ``onsale writer``'s tuning flags, passed to persistence.writer.build_writer when given.
WRITER_TUNING = {
    "batch": "entries per read and per store write (default 500)",
    "block_ms": "how long a read waits for new entries (default 1000)",
    "min_idle_ms": "reclaim another consumer's entries idle this long (default 30000)",
    "reclaim_interval_ms": "how often idle entries are looked for (default 5000)",
}


def cmd_sweeper(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    configure_logging(settings)
    from api.metrics import EXPIRY_COUNTS, serve_process_metrics, watched
    from api.runtime import make_engine, redis_client
    from engine.expiry import ExpiryListener, ExpiryStats, Sweeper
    from engine.queue import Admitter, QueueEngine

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await until_signal(stop)
        redis = redis_client(url, settings)
        engine = make_engine(redis, settings)
        await engine.start()
        stats = ExpiryStats()  # METRICS_PORT: releases by path, sweeps (api.metrics)
        stop_metrics = serve_process_metrics(settings, watched([(stats, EXPIRY_COUNTS)]))
        tasks = [
            Sweeper(engine, settings.sweep_interval_s, stats).run(stop),
            Admitter(QueueEngine(engine), settings.admit_interval_s).run(stop),
        ]
        if not args.no_listener:
            tasks.append(ExpiryListener(engine, stats).run(stop))
        try:
            await asyncio.gather(*tasks)
        finally:
            if stop_metrics is not None:
                stop_metrics()
            await redis.aclose()

    with_redis(settings, run)
    return 0


def cmd_writer(args: argparse.Namespace) -> int:
    """Run one order writer until SIGTERM/SIGINT (the batch in hand is finished)."""
    settings = settings_or_exit()
    check_mongodb(settings)
    configure_logging(settings)
    from api.metrics import WRITER_COUNTS, serve_process_metrics, watched
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

        with_redis(settings, replay)
        return 0

    tuning = {name: value for name in WRITER_TUNING if (value := getattr(args, name)) is not None}

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await until_signal(stop)
        redis = redis_client(url, settings)
        store = AsyncStore(open_store(settings.mongodb_uri, settings.data_dir))
        writer = build_writer(
            redis, store, name=args.name, linger_ms=settings.writer_linger_ms, **tuning
        )
        # METRICS_PORT: the writer's counters, lag and dead letters (api.metrics).
        stop_metrics = serve_process_metrics(
            settings, watched([(writer.stats, WRITER_COUNTS)]), writer.lag
        )
        try:
            await writer.run(stop)
        finally:
            if stop_metrics is not None:
                stop_metrics()
            await store.close()
            await redis.aclose()

    with_redis(settings, run)
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Run one webhook dispatcher until SIGTERM/SIGINT (attempts in hand finish)."""
    settings = settings_or_exit()
    check_mongodb(settings)
    configure_logging(settings)
    from api.runtime import make_engine, redis_client
    from api.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
    from persistence.aio import AsyncStore
    from persistence.factory import open_store
    from persistence.webhooks import AsyncWebhookStore, open_webhook_store

    async def run(url: str) -> None:
        stop = asyncio.Event()
        await until_signal(stop)
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

    with_redis(settings, run)
    return 0
