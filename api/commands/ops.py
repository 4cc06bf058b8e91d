"""The operator's one-shot commands: ``onsale audit`` (the stock invariants),
``onsale queue verify`` (an admission queue's opening order against its revealed seed)
and ``onsale seed`` (the demo data)."""

from __future__ import annotations

import argparse
import sys

from api.commands.common import (
    check_mongodb,
    configure_logging,
    refuse_seed_in_production,
    seed_demo,
    settings_or_exit,
    with_redis,
)


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 on any violation, 3 when Redis cannot be reached."""
    from redis.exceptions import RedisError

    settings = settings_or_exit()
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
        return with_redis(settings, run)
    except (RedisError, OSError) as e:
        print(f"onsale audit: cannot reach Redis: {e}", file=sys.stderr)
        return 3


def cmd_queue_verify(args: argparse.Namespace) -> int:
    """Recompute an admission queue's opening order from its revealed seed and join list
    and compare it with the places the server gave (docs/queue.md). Exit 0 when they
    match, 1 on any difference, 2 when there is nothing to check yet."""
    settings = settings_or_exit()
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

    return with_redis(settings, run)


def cmd_seed(args: argparse.Namespace) -> int:
    settings = settings_or_exit()
    refuse_seed_in_production(settings, "seed")
    check_mongodb(settings)
    configure_logging(settings)
    with_redis(settings, lambda url: seed_demo(settings, url))
    return 0
