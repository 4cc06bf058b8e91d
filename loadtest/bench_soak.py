"""Soak: does Redis memory stay flat while holds keep cycling? (issue 17, item 9)

A real redis-server (``engine.redis_server.RedisServer``, AOF off) and, in this process,
the engine, the order writer (SQLite store), the expiry listener and the sweeper, all
running as ``onsale serve`` runs them. ``--holds`` one- or two-ticket holds are made in
waves of ``--chunk`` concurrent ones, each with an Idempotency-Key; of every three, one is
confirmed, one cancelled and one left to expire (``--hold-ttl``). The writer stores every
order and retires the finished ones; the sweeper prunes them ``--retention`` seconds later;
the users' Idempotency-Key records expire after ``--idem-ttl`` seconds.

Every ``--every`` holds it samples Redis ``used_memory`` (INFO memory) and what is in the
keyspace: live holds (the deadline sets), orders still in Redis (the orders hashes), the
retention sets, the order logs. ``bytes/live`` is memory above the armed baseline per live
hold, ``bytes/order`` per order Redis still holds. Once retention kicks in (after about
``hold-ttl + retention`` seconds) memory should stop growing: the last line compares the
second half of the run with the first. At the end it waits for the last holds to finish
and be pruned, and reports memory back near the baseline.

Engine-level on purpose (no HTTP): what grows is Redis, not the API.

    python -m loadtest.bench_soak [--holds 1000000] [--chunk 500] [--every 50000]
        [--hold-ttl 2] [--retention 3] [--idem-ttl 10] [--events 4] [--max-backlog 20000]

Holds pause while the order logs hold more than ``--max-backlog`` entries: in one process
the holds can outrun the writer, and an order the writer has not stored cannot leave Redis
(``--max-backlog 0`` shows that lag as growth).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.expiry import ExpiryListener, Sweeper
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from loadtest.common import machine, write_result
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.writer import OrderWriter


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def census(redis: Redis, event_ids: list[str]) -> dict[str, int]:
    pipe = redis.pipeline(transaction=False)
    for e in event_ids:
        pipe.zcard(keys.deadlines(e))
        pipe.hlen(keys.orders(e))
        pipe.zcard(keys.retired(e))
        pipe.xlen(keys.order_log(e))
        pipe.hlen(keys.idempotency(e))
    raw = [int(x) for x in await pipe.execute()]
    out = {"live": 0, "orders": 0, "retired": 0, "log": 0, "idem": 0}
    for i in range(len(event_ids)):
        for j, name in enumerate(out):
            out[name] += raw[5 * i + j]
    out["keys"] = int(await redis.dbsize())
    return out


async def drained_below(redis: Redis, event_ids: list[str], entries: int) -> None:
    """Until the order logs hold at most ``entries`` entries (the writer trims them)."""
    while True:
        if (await census(redis, event_ids))["log"] <= entries:
            return
        await asyncio.sleep(0.05)


async def cycle(engine: Engine, event_ids: list[str], start: int, count: int) -> None:
    """``count`` holds from number ``start`` on, concurrently; then confirm or cancel
    two of every three (the third expires)."""

    async def one(n: int) -> None:
        event_id = event_ids[n % len(event_ids)]
        items = [("gen", 1)] if n % 2 else [("gen", 1), ("vip", 1)]
        held = await engine.hold(event_id, f"u{n % 5000}", items, idempotency_key=f"k{n}")
        order = held.order
        if n % 3 == 0:
            await engine.confirm(
                order.id, order.user_id, payment_method="card", transaction_id=f"t{n}"
            )
        elif n % 3 == 1:
            await engine.cancel(order.id, order.user_id)

    await asyncio.gather(*(one(n) for n in range(start, start + count)))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="onsale-soak-") as tmp:
        root = Path(tmp)
        server = RedisServer(data_dir=root / "redis", appendonly=False).start()
        redis = Redis.from_url(server.url)
        store = AsyncStore(SQLiteStore(root / "store" / "onsale.db"))
        stop = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        try:
            engine = Engine(
                redis,
                EngineConfig(
                    hold_ttl_ms=int(args.hold_ttl * 1000),
                    order_retention_ms=int(args.retention * 1000),
                    idempotency_ttl_s=args.idem_ttl,
                    max_per_order=10,
                ),
            )
            await engine.start()
            event_ids = [f"soak{i}" for i in range(args.events)]
            per_event = args.holds  # confirmed tickets never come back: room for all
            for event_id in event_ids:
                await engine.arm_event(
                    event_id,
                    [
                        CategorySpec(id="gen", name="General", price=20, total=per_event),
                        CategorySpec(id="vip", name="VIP", price=90, total=per_event),
                    ],
                )
            baseline = await used_memory(redis)
            writer = OrderWriter(redis, store, f"soak-{socket.gethostname()}", linger_ms=20)
            sweeper = Sweeper(engine, args.interval)
            listener = ExpiryListener(engine, sweeper.stats)
            tasks = [
                asyncio.create_task(writer.run(stop), name="writer"),
                asyncio.create_task(sweeper.run(stop), name="sweeper"),
                asyncio.create_task(listener.run(stop), name="listener"),
            ]
            samples: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            print(
                f"{'holds':>9} {'s':>6} {'used_memory':>12} {'live':>7} {'orders':>8} "
                f"{'retired':>8} {'log':>7} {'keys':>7} {'bytes/live':>10} {'bytes/order':>11}"
            )
            done = 0
            while done < args.holds:
                count = min(args.chunk, args.holds - done)
                await cycle(engine, event_ids, done, count)
                done += count
                if args.max_backlog:
                    # Everything runs in this one process: holds can outrun the writer,
                    # and orders it has not stored yet cannot leave Redis (that is lag,
                    # not a leak). Wait for it, as a real on-sale's pace would.
                    await drained_below(redis, event_ids, args.max_backlog)
                if done % args.every < count or done == args.holds:
                    mem = await used_memory(redis)
                    seen = await census(redis, event_ids)
                    row = {
                        "holds": done,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "used_memory": mem,
                        **seen,
                        "bytes_per_live_hold": round((mem - baseline) / max(1, seen["live"])),
                        "bytes_per_order_in_redis": round(
                            (mem - baseline) / max(1, seen["orders"])
                        ),
                    }
                    samples.append(row)
                    print(
                        f"{done:>9} {row['seconds']:>6} {mem:>12} {seen['live']:>7} "
                        f"{seen['orders']:>8} {seen['retired']:>8} {seen['log']:>7} "
                        f"{seen['keys']:>7} {row['bytes_per_live_hold']:>10} "
                        f"{row['bytes_per_order_in_redis']:>11}"
                    )
            elapsed = time.perf_counter() - t0
            # Let the last holds expire, be stored and be pruned.
            drain_deadline = time.perf_counter() + args.hold_ttl + args.retention + 30
            while time.perf_counter() < drain_deadline:
                seen = await census(redis, event_ids)
                if not seen["live"] and not seen["orders"]:
                    break
                await asyncio.sleep(0.5)
            drained = await census(redis, event_ids)
            drained_mem = await used_memory(redis)
            report = await audit(engine, event_ids)
            half = [s["used_memory"] for s in samples[len(samples) // 2 :]]
            first = [s["used_memory"] for s in samples[: len(samples) // 2]]
            result = {
                "holds": args.holds,
                "seconds": round(elapsed, 1),
                "holds_per_second": round(args.holds / elapsed),
                "hold_ttl_s": args.hold_ttl,
                "retention_s": args.retention,
                "idempotency_ttl_s": args.idem_ttl,
                "baseline_used_memory": baseline,
                "peak_used_memory_first_half": max(first, default=0),
                "peak_used_memory_second_half": max(half, default=0),
                "used_memory_after_drain": drained_mem,
                "after_drain": drained,
                "pruned": sweeper.stats.pruned,
                "audit_ok": report.clean,
                "samples": samples,
                "machine": machine(),
            }
            print(
                f"\npeak used_memory: first half {result['peak_used_memory_first_half']}, "
                f"second half {result['peak_used_memory_second_half']} "
                f"(baseline {baseline}); after drain {drained_mem} with {drained}; "
                f"pruned {sweeper.stats.pruned}; audit {'ok' if report.clean else 'FAILED'}; "
                f"{result['holds_per_second']} holds/s"
            )
            return result
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await store.close()
            await redis.aclose()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_soak", description=__doc__)
    parser.add_argument("--holds", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=500, help="concurrent holds per wave")
    parser.add_argument("--every", type=int, default=0, help="sample every N holds")
    parser.add_argument("--events", type=int, default=4)
    parser.add_argument("--hold-ttl", type=float, default=2.0, help="seconds")
    parser.add_argument("--retention", type=float, default=3.0, help="seconds")
    parser.add_argument("--idem-ttl", type=int, default=10, help="seconds")
    parser.add_argument("--interval", type=float, default=0.25, help="sweep interval (s)")
    parser.add_argument(
        "--max-backlog",
        type=int,
        default=20_000,
        help="pause the holds while the order logs hold more entries (0: never)",
    )
    args = parser.parse_args(argv)
    args.every = args.every or max(args.chunk, args.holds // 20)
    result = asyncio.run(bench(args))
    print(f"written to {write_result('soak', result)}")
    return 0 if result["audit_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
