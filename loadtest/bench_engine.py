"""Engine holds/s from one Python process against the raw ceiling of the same script.

Side by side in one run (A B A B ...): redis-benchmark sending EVALSHA of the real
``hold_tickets`` script straight to Redis (the ceiling), then the Engine's ``hold()`` from
one asyncio process with many concurrent buyers (batched into pipelines). Redis is pinned to
core 0, both load generators to core 1. Prints the median ratio engine / raw.

    python -m loadtest.bench_engine [--seconds 5] [--rounds 3] [--concurrency 256]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from engine import keys
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from loadtest.common import machine, pin_pid, pin_prefix, summary, write_result

T = TypeVar("T")
EVENT = "bench"
HOLD_TTL_MS = 3_600_000


def raw_ceiling(
    server: RedisServer, sha: str, seconds: float, clients: int, pipeline: int
) -> float:
    """redis-benchmark running hold_tickets with a fresh order id per call.

    ``-r`` must stay within a C int: redis-benchmark parses it with atoi, and 10**12 once
    made every call reuse order 0, so the "ceiling" measured the already-held fast path."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise SystemExit("redis-benchmark not found: apt-get install redis-tools (make bench does)")
    # About `seconds` of work at the ~15k/s a real hold sustains here: a fixed large count
    # grew the event's hashes and streams far more than the engine's rounds do.
    requests = max(10_000, int(seconds * 15_000))
    oid = f"{EVENT}.__rand_int__"
    cmd = [
        *pin_prefix(1),
        exe,
        "-p",
        str(server.port),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-P",
        str(pipeline),
        "-r",
        "100000000",
        "-q",
        "--csv",
        "EVALSHA",
        sha,
        "10",
        keys.inventory(EVENT),
        keys.orders(EVENT),
        keys.idempotency(EVENT),
        keys.deadlines(EVENT),
        keys.timer(EVENT, oid),
        keys.feed(EVENT),
        keys.order_log(EVENT),
        keys.buyers(EVENT),
        keys.queue_keys(EVENT).queue,
        keys.queue_keys(EVENT).admissions,
        EVENT,
        oid,
        "raw",
        "",
        str(HOLD_TTL_MS),
        "10000",
        "1",
        "a",
        "1",
        "",
    ]
    probe = SyncRedis.from_url(server.url)
    before = int(probe.hlen(keys.orders(EVENT)))
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 20 + 60)
    elapsed = time.perf_counter() - started
    fresh = (int(probe.hlen(keys.orders(EVENT))) - before) / requests
    probe.close()
    if fresh < 0.95:  # the ceiling must be real holds, not the already-held reply
        raise SystemExit(f"raw ceiling: only {fresh:.0%} of the calls created an order")
    m = re.search(r'"EVALSHA[^"]*","([\d.]+)"', out.stdout)
    return float(m.group(1)) if m else requests / elapsed


async def engine_rate(
    url: str, seconds: float, concurrency: int
) -> tuple[float, list[float], float]:
    """Holds/s, each hold's latency, and this process's CPU per hold (the engine's client
    cost: packing, parsing, futures and wake-ups, the socket I/O's system time)."""
    redis = Redis.from_url(url, max_connections=64)
    engine = Engine(redis, EngineConfig(hold_ttl_ms=HOLD_TTL_MS, feed_maxlen=10_000))
    count = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def buyer(i: int) -> None:
        nonlocal count
        n = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await engine.hold(EVENT, f"u{i}", [("a", 1)])
            latencies.append(time.perf_counter() - t0)
            n += 1
        count += n

    started, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(buyer(i) for i in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    await redis.aclose()
    return count / elapsed, latencies, cpu / max(1, count) * 1e6


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed, the loop ``onsale serve`` runs the engine on (uvicorn
    picks it): about 1.5x the holds/s of the default asyncio loop here."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=False).start()
        assert server.process is not None
        pinned = pin_pid(server.process.pid, 0) and pin_pid(__import__("os").getpid(), 1)

        async def prepare() -> str:
            redis = Redis.from_url(server.url)
            engine = Engine(redis)
            await engine.start()
            await engine.arm_event(
                EVENT, [CategorySpec(id="a", name="A", price=1, total=10**12)], max_per_order=10
            )
            sha = engine.scripts.by_name["hold_tickets"].sha
            await redis.aclose()
            return sha

        sha = asyncio.run(prepare())
        raws_unpiped, raws, engines, p50s, p99s, cpus = [], [], [], [], [], []
        for r in range(args.rounds):
            raws_unpiped.append(raw_ceiling(server, sha, args.seconds, args.clients, 1))
            raws.append(raw_ceiling(server, sha, args.seconds, args.clients, args.pipeline))
            rate, lat, cpu = run_loop(engine_rate(server.url, args.seconds, args.concurrency))
            lat.sort()
            engines.append(rate)
            cpus.append(cpu)
            p50s.append(lat[len(lat) // 2] * 1000)
            p99s.append(lat[int(len(lat) * 0.99)] * 1000)
            print(
                f"round {r + 1}: raw {raws_unpiped[-1]:,.0f}/s (P1) {raws[-1]:,.0f}/s "
                f"(P{args.pipeline}), engine {rate:,.0f}/s",
                file=sys.stderr,
            )

        async def check() -> bool:
            redis = Redis.from_url(server.url)
            report = await audit(Engine(redis), [EVENT])
            await redis.aclose()
            return report.clean

        clean = asyncio.run(check())
        server.stop()

    ratios = [e / r for e, r in zip(engines, raws, strict=True)]
    ratios_p1 = [e / r for e, r in zip(engines, raws_unpiped, strict=True)]
    result = {
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_engine " + " ".join(sys.argv[1:]),
        "raw_unpipelined_per_s": summary(raws_unpiped),
        f"raw_pipelined_{args.pipeline}_per_s": summary(raws),
        "engine_per_s": summary(engines),
        "ratio_vs_pipelined": summary(ratios),
        "ratio_vs_unpipelined": summary(ratios_p1),
        "engine_p50_ms": summary(p50s),
        "engine_p99_ms": summary(p99s),
        "engine_cpu_us_per_hold": summary(cpus),
        "audit_clean": clean,
    }
    path = write_result("engine", result)
    print(f"machine: {result['machine']}  pinned redis->core0, generators->core1: {pinned}")
    print(f"{'metric':<34}{'median':>12}{'min':>12}{'max':>12}")
    for name in (
        "raw_unpipelined_per_s",
        f"raw_pipelined_{args.pipeline}_per_s",
        "engine_per_s",
        "ratio_vs_pipelined",
        "ratio_vs_unpipelined",
        "engine_p50_ms",
        "engine_p99_ms",
        "engine_cpu_us_per_hold",
    ):
        s = result[name]
        print(f"{name:<34}{s['median']:>12,.2f}{s['min']:>12,.2f}{s['max']:>12,.2f}")
    print(f"target: engine >= 0.5 x raw ceiling; audit clean: {clean}; written to {path}")
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
