"""Admission-queue benchmark (engine level, one embedded redis-server):

* joins/s vs holds/s of the same run (concurrent script calls through the engine's
  pipelined connection: what a join costs Redis against what a hold costs);
* the opening of an N-buyer pre-queue (HMAC order in Python, ``place_opened`` batches);
* a freed ticket (a cancel) to the next admission, with the :class:`Admitter` loop
  running at its default 200 ms poll: p50/p99.

    .venv/bin/python -m loadtest.bench_queue --pre 100000 --samples 50
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from engine.core import Engine
from engine.models import CategorySpec
from engine.queue import Admitter, QueueEngine, QueueSettings
from engine.redis_server import RedisServer


async def _gather_bounded(coros: list, limit: int = 200) -> None:  # type: ignore[type-arg]
    sem = asyncio.Semaphore(limit)

    async def one(c):  # type: ignore[no-untyped-def]
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def joins_vs_holds(engine: Engine, n: int) -> tuple[float, float]:
    q = QueueEngine(engine)
    await engine.arm_event("bj", [CategorySpec(id="c", name="C", price=1, total=10**9)])
    await engine.arm_event("bh", [CategorySpec(id="c", name="C", price=1, total=10**9)])
    await q.configure(
        "bj", QueueSettings(opens_at_ms=int(time.time() * 1000) + 3_600_000, pre_queue_minutes=120)
    )
    t = time.perf_counter()
    await _gather_bounded([q.join("bj", f"u{i}") for i in range(n)])
    joins = n / (time.perf_counter() - t)
    t = time.perf_counter()
    await _gather_bounded([engine.hold("bh", f"u{i}", [("c", 1)]) for i in range(n)])
    holds = n / (time.perf_counter() - t)
    return joins, holds


async def opening(engine: Engine, n: int) -> float:
    q = QueueEngine(engine)
    await engine.arm_event("bo", [CategorySpec(id="c", name="C", price=1, total=10)])
    await q.configure("bo", QueueSettings(opens_at_ms=int(time.time() * 1000) + 2_000))
    await _gather_bounded([q.join("bo", f"user-{i}") for i in range(n)])
    while True:
        result = await q.open_if_due("bo", "bench")
        if result is not None:
            return result.seconds
        await asyncio.sleep(0.05)


async def freed_to_admission(engine: Engine, samples: int) -> list[float]:
    q = QueueEngine(engine)
    await engine.arm_event("bf", [CategorySpec(id="c", name="C", price=1, total=1)])
    await q.configure(
        "bf", QueueSettings(opens_at_ms=int(time.time() * 1000) + 500, tickets_per_admission=1)
    )
    for i in range(samples + 1):
        await q.join("bf", f"f{i}")
    stop = asyncio.Event()
    admitter = Admitter(q)
    task = asyncio.create_task(admitter.run(stop))
    latencies = []
    try:
        for _ in range(samples + 1):
            while True:  # the admitted buyer
                places = await q.places("bf", [f"f{i}" for i in range(samples + 1)])
                mine = [p for p in places if p and p.status == "ADMITIDO"]
                if mine:
                    break
                await asyncio.sleep(0.01)
            buyer = mine[0]
            held = await engine.hold("bf", buyer.user_id, [("c", 1)], admission_token=buyer.token)
            start = time.perf_counter()
            await engine.cancel(held.order.id, buyer.user_id)  # the freed ticket
            before = (await q.info("bf")).admitted  # type: ignore[union-attr]
            while True:
                info = await q.info("bf")
                if info is None or info.admitted > before or info.waiting == 0:
                    break
                await asyncio.sleep(0.002)
            latencies.append(time.perf_counter() - start)
            if info is None or info.waiting == 0:
                break
    finally:
        stop.set()
        await task
    return latencies


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] * 1000 if s else float("nan")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=False).start()
        try:
            redis = Redis.from_url(server.url)
            engine = Engine(redis)
            await engine.start()
            joins, holds = await joins_vs_holds(engine, args.ops)
            print(f"joins/s {joins:,.0f}  holds/s {holds:,.0f}  ratio {joins / holds:.2f}")
            seconds = await opening(engine, args.pre)
            print(f"opening of a {args.pre:,} pre-queue: {seconds:.2f} s")
            lat = await freed_to_admission(engine, args.samples)
            print(
                f"freed ticket -> admission ({len(lat)} samples, 200 ms poll): "
                f"p50 {_pct(lat, 0.5):.0f} ms  p99 {_pct(lat, 0.99):.0f} ms"
            )
            await redis.aclose()
        finally:
            server.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ops", type=int, default=20_000)
    p.add_argument("--pre", type=int, default=100_000)
    p.add_argument("--samples", type=int, default=50)
    asyncio.run(main(p.parse_args()))
