"""Benchmark of the order writer: how fast a backlog of order-log entries reaches the store.

Standalone: starts its own redis-server (``engine.redis_server.RedisServer``, AOF on as in
production) and a temporary SQLite store, arms one or more events, makes N holds and
confirms through the real Engine (2 log entries per order), then lets one writer drain
the backlog and reports throughput and batch sizes.

    .venv/bin/python -m loadtest.bench_writer --orders 20000 --batch 500

Prints a table and writes ``var/bench/writer.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from redis.asyncio import Redis

from engine import keys
from engine.core import Engine, EngineConfig
from engine.models import CategorySpec, Order
from engine.redis_server import RedisServer
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.writer import OrderWriter, measure_lag


class TimedStore(SQLiteStore):
    """The SQLite store, timing each upsert (how much of the drain is the store)."""

    def __init__(self, path: Path, synchronous: Literal["NORMAL", "FULL"]) -> None:
        super().__init__(path, synchronous=synchronous)
        self.upsert_seconds: list[float] = []

    def upsert_orders(self, orders: list[Order]) -> int:
        started = time.perf_counter()
        try:
            return super().upsert_orders(orders)
        finally:
            self.upsert_seconds.append(time.perf_counter() - started)


async def make_orders(engine: Engine, event_ids: list[str], orders: int, chunk: int) -> None:
    per_event = orders // len(event_ids)
    for event_id in event_ids:
        for start in range(0, per_event, chunk):
            n = min(chunk, per_event - start)
            held = await asyncio.gather(
                *(
                    engine.hold(event_id, f"user{(start + i) % 1000}", [("gen", 1)])
                    for i in range(n)
                )
            )
            await asyncio.gather(
                *(
                    engine.confirm(
                        h.order.id,
                        h.order.user_id,
                        payment_method="card",
                        transaction_id=h.order.id,
                    )
                    for h in held
                )
            )


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="onsale-bench-writer-") as tmp:
        root = Path(tmp)
        server = RedisServer(data_dir=root / "redis", appendonly=True).start()
        redis = Redis.from_url(server.url)
        sqlite = TimedStore(root / "store" / "onsale.db", args.synchronous)
        store = AsyncStore(sqlite)
        try:
            engine = Engine(redis, EngineConfig(hold_ttl_ms=3_600_000))
            await engine.start()
            event_ids = [f"bench{i}" for i in range(args.events)]
            for event_id in event_ids:
                await engine.arm_event(
                    event_id,
                    [CategorySpec(id="gen", name="General", price=42.5, total=args.orders)],
                )
            t0 = time.perf_counter()
            await make_orders(engine, event_ids, args.orders, args.chunk)
            produce_s = time.perf_counter() - t0
            orders = (args.orders // args.events) * args.events
            entries = sum([await redis.xlen(keys.order_log(e)) for e in event_ids])
            backlog = await measure_lag(redis, event_ids)

            writer = OrderWriter(redis, store, "bench", batch=args.batch, block_ms=0)
            t1 = time.perf_counter()
            await writer.run_until_idle(within_s=600)
            drain_s = time.perf_counter() - t1

            stored = sqlite.order_stats().by_status.get("CONFIRMED", 0)
            if stored != orders:
                raise SystemExit(f"only {stored} of {orders} orders persisted")
            sizes = writer.stats.batch_sizes
            upserts = sqlite.upsert_seconds
            return {
                "orders": orders,
                "log_entries": entries,
                "events": args.events,
                "batch": args.batch,
                "sqlite_synchronous": args.synchronous,
                "produce_seconds": round(produce_s, 3),
                "backlog_oldest_age_ms": backlog.oldest_age_ms,
                "drain_seconds": round(drain_s, 3),
                "orders_per_second": round(orders / drain_s),
                "entries_per_second": round(entries / drain_s),
                "order_writes": writer.stats.orders_written,
                "batches": len(sizes),
                "batch_size_mean": round(statistics.fmean(sizes), 1) if sizes else 0,
                "batch_size_max": max(sizes, default=0),
                "upsert_ms_p50": round(statistics.median(upserts) * 1000, 2) if upserts else 0,
                "upsert_ms_max": round(max(upserts, default=0) * 1000, 2),
                "store_share_of_drain": round(sum(upserts) / drain_s, 3),
                "trimmed_entries": writer.stats.trimmed,
                "machine": f"{platform.machine()} {platform.python_version()}",
            }
        finally:
            await store.close()
            await redis.aclose()
            server.stop()


def table(result: dict[str, Any]) -> str:
    width = max(len(k) for k in result)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in result.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_writer", description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=500, help="concurrent holds per round")
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--out", type=Path, default=Path("var/bench/writer.json"))
    args = parser.parse_args(argv)
    result = asyncio.run(bench(args))
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
