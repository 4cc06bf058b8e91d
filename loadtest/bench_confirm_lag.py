"""How long after a confirm answers the store holds it (the writer's idle lag).

Standalone: its own redis-server (AOF on), a temporary SQLite store, and one order writer
built as an API worker builds it (``build_writer``: ``block_ms`` 1000, WRITER_LINGER_MS).
Confirms one order at a time (hold, confirm, then poll the store every 1 ms until it
holds that version) so every confirm meets an idle writer, which is what an admin list
right after a confirm sees. Two cases:

* ``followed``: the event's log is already followed by the writer (steady state);
* ``new event``: the event is armed just before its first confirm (the writer finds new
  logs when it refreshes, every second, or when its blocking read returns).

    .venv/bin/python -m loadtest.bench_confirm_lag [--confirms 200] [--new-events 20]
        [--linger-ms 20]

Prints p50/p99/max per case and writes ``var/bench/confirm_lag.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from engine.core import Engine, EngineConfig
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.writer import build_writer


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _one(engine: Engine, reader: AsyncStore, event_id: str, i: int) -> float:
    held = (await engine.hold(event_id, f"u{i}", [("gen", 1)])).order
    sale = (
        await engine.confirm(held.id, held.user_id, payment_method="card", transaction_id=f"t{i}")
    ).order
    start = time.perf_counter()
    while True:
        stored = await reader.get_order(sale.id)
        if stored is not None and stored.version >= sale.version:
            return (time.perf_counter() - start) * 1000
        await asyncio.sleep(0.001)


async def _arm(engine: Engine, event_id: str) -> None:
    await engine.arm_event(
        event_id, [CategorySpec(id="gen", name="General", price=10.0, total=1_000_000)]
    )


async def run(confirms: int, new_events: int, linger_ms: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = RedisServer(data_dir=root / "redis", appendonly=True).start()
        redis = Redis.from_url(server.url)
        store = AsyncStore(SQLiteStore(root / "onsale.db"))
        reader = AsyncStore(SQLiteStore(root / "onsale.db"))  # its own threads
        try:
            engine = Engine(redis, EngineConfig())
            await engine.start()
            await _arm(engine, "steady")
            writer = build_writer(redis, store, name="bench", linger_ms=linger_ms)
            stop = asyncio.Event()
            task = asyncio.create_task(writer.run(stop))
            await asyncio.sleep(1.5)  # the writer follows "steady" by now
            followed = [await _one(engine, reader, "steady", i) for i in range(confirms)]
            fresh = []
            for n in range(new_events):
                await _arm(engine, f"new{n}")
                fresh.append(await _one(engine, reader, f"new{n}", n))
            stop.set()
            await task
        finally:
            await reader.close()
            await store.close()
            await redis.aclose()
            server.stop()
    out: dict[str, Any] = {"linger_ms": linger_ms}
    for name, values in (("followed", followed), ("new event", fresh)):
        if values:
            out[name] = {
                "n": len(values),
                "p50_ms": round(statistics.median(values), 1),
                "p99_ms": round(_quantile(values, 0.99), 1),
                "max_ms": round(max(values), 1),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confirms", type=int, default=200)
    parser.add_argument("--new-events", type=int, default=20)
    parser.add_argument("--linger-ms", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.confirms, args.new_events, args.linger_ms))
    for name in ("followed", "new event"):
        if name in result:
            r = result[name]
            print(
                f"{name:>10}: n={r['n']} p50={r['p50_ms']} ms p99={r['p99_ms']} ms "
                f"max={r['max_ms']} ms (confirm -> stored)"
            )
    path = Path("var/bench/confirm_lag.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
