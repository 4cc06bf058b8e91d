"""Expiry release lag: 10,000 holds expiring together, listener path vs sweeper-only path.

A real redis-server (``engine.redis_server.RedisServer``, keyspace notifications ``Ex``)
pinned to core 0; this process (the engine, the holds, the expiry machinery) on core 1.
Each round arms a fresh event, makes ``--holds`` one-ticket holds as fast as the engine
takes them (pipelined), all with the same ``--ttl``, so their deadlines fall within the
creation burst, and runs exactly one release path:

* ``listener``: :class:`engine.expiry.ExpiryListener` alone (keyspace ``expired``
  notifications of the timer keys). Holds it did not release within the bound are counted
  as missed, then swept so the round ends clean;
* ``sweeper``: :class:`engine.expiry.Sweeper` alone (``--interval``), as after a listener
  outage;
* ``both``: listener and sweeper together, as ``onsale serve`` runs them.

Beside the path under test, an observer subscribed to the same notifications records when
each timer's ``expired`` event reaches a client (``notify_*``): how late Redis itself fires,
apart from what the listener does with it.

The lag of every hold is measured by the Redis clock on both ends: the release's entry in
the event's order log carries ``actualizadoEn`` (the script's ``TIME``) and ``expiraEn``
(the deadline the hold script set), so lag = actualizadoEn - expiraEn, no client clock
involved. "All back" is when available stock equals the total again, relative to the last
deadline. Paths alternate (listener, sweeper, listener, ...) and the audit runs at the end.

    python -m loadtest.bench_expiry [--holds 10000] [--ttl 6] [--interval 1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
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
from loadtest.common import machine, percentile, pin_pid, summary, write_result

PATHS = ("listener", "sweeper", "both")


async def make_holds(engine: Engine, event_id: str, count: int, chunk: int = 1000) -> float:
    started = time.perf_counter()
    for start in range(0, count, chunk):
        await asyncio.gather(
            *(
                engine.hold(event_id, f"u{i % 5000}", [("gen", 1)])
                for i in range(start, min(count, start + chunk))
            )
        )
    return time.perf_counter() - started


async def released_lags(redis: Redis, event_id: str) -> tuple[list[float], dict[str, int]]:
    """Per released hold: release time - deadline (ms, Redis clock); and every deadline."""
    lags: list[float] = []
    deadlines: dict[str, int] = {}
    last = "-"
    while True:
        entries: Any = await redis.xrange(keys.order_log(event_id), min=last, count=5000)
        if last != "-" and entries:
            entries = entries[1:]
        if not entries:
            break
        for _, fields in entries:
            order = json.loads(fields[b"order"])
            if order.get("estado") == "RESERVED":
                deadlines[order["id"]] = int(order["expiraEn"])
            elif order.get("estado") == "EXPIRED":
                lags.append(float(order["actualizadoEn"]) - float(order["expiraEn"]))
        last_id = entries[-1][0]
        last = last_id.decode() if isinstance(last_id, bytes) else last_id
    return lags, deadlines


async def observe_notifications(
    redis: Redis, event_id: str, arrivals: dict[str, float], ready: asyncio.Event
) -> None:
    """When each timer key's ``expired`` notification reaches a client (epoch ms): how late
    Redis itself fires, apart from what the listener then does with it."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("__keyevent@0__:expired")
    ready.set()
    try:
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is None:
                continue
            timer = keys.parse_timer(msg["data"].decode())
            if timer is not None and timer.event_id == event_id:
                arrivals[timer.order_id] = time.time() * 1000
            if len(arrivals) % 100 == 0:
                # A buffered message is read without yielding: without this, draining a
                # burst of notifications stalls the path under test (same event loop).
                await asyncio.sleep(0)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def one_round(url: str, path: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    redis = Redis.from_url(url, max_connections=64)
    engine = Engine(
        redis,
        EngineConfig(hold_ttl_ms=int(args.ttl * 1000), feed_maxlen=1000, sweep_batch=500),
    )
    await engine.start()
    event_id = f"exp{path[0]}{n}"
    await engine.arm_event(
        event_id, [CategorySpec(id="gen", name="G", price=1, total=args.holds)], max_per_order=10
    )
    stop = asyncio.Event()
    listener = ExpiryListener(engine)
    sweeper = Sweeper(engine, args.interval)
    tasks = []
    if path in ("listener", "both"):
        tasks.append(asyncio.create_task(listener.run(stop)))
        await asyncio.wait_for(listener.ready.wait(), 10)
    if path in ("sweeper", "both"):
        tasks.append(asyncio.create_task(sweeper.run(stop)))
    arrivals: dict[str, float] = {}
    observing = asyncio.Event()
    observer = asyncio.create_task(observe_notifications(redis, event_id, arrivals, observing))
    await asyncio.wait_for(observing.wait(), 10)
    create_s = await make_holds(engine, event_id, args.holds)

    # Wait until every ticket is back (bounded), noting when by the Redis clock.
    bound = time.monotonic() + args.ttl + args.bound
    back_ms = None
    while time.monotonic() < bound:
        stock = await engine.stock(event_id)
        assert stock is not None
        if stock.categories[0].available == args.holds:
            sec, micro = await redis.time()
            back_ms = sec * 1000 + micro // 1000
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.gather(*tasks)
    observer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await observer
    missed = 0
    if back_ms is None:  # the listener path lost some: sweep them so the round ends clean
        missed = await engine.sweep_event(event_id)
    lags, deadlines = await released_lags(redis, event_id)
    report = await audit(engine, [event_id])
    await redis.aclose()
    lags.sort()
    fired = sorted(t - deadlines[o] for o, t in arrivals.items() if o in deadlines)
    last_deadline = max(deadlines.values()) if deadlines else 0
    return {
        "path": path,
        "holds": args.holds,
        "create_seconds": create_s,
        "deadline_spread_ms": (
            (max(deadlines.values()) - min(deadlines.values())) if deadlines else 0
        ),
        "released": len(lags),
        "missed_by_path": missed,
        "by_listener": listener.stats.released_by_listener,
        "by_sweeper": sweeper.stats.released_by_sweeper,
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": lags[-1] if lags else float("nan"),
        "all_back_after_last_deadline_ms": (back_ms - last_deadline) if back_ms else None,
        "notifications": len(fired),
        "notify_p50_ms": percentile(fired, 0.5),
        "notify_p99_ms": percentile(fired, 0.99),
        "audit_clean": report.clean,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--holds", type=int, default=10_000)
    parser.add_argument("--ttl", type=float, default=6.0, help="hold lifetime, seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="sweep interval, seconds")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each path")
    parser.add_argument("--bound", type=float, default=30.0, help="max wait past the ttl, s")
    args = parser.parse_args()
    if not 1 <= args.holds <= 1_000_000:
        parser.error("holds must be 1..1,000,000")

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=False).start()
        assert server.process is not None
        pinned = pin_pid(server.process.pid, 0) and pin_pid(os.getpid(), 1)
        try:
            for n in range(args.rounds):
                for path in PATHS:
                    r = asyncio.run(one_round(server.url, path, n, args))
                    rounds.append(r)
                    print(
                        f"round {n + 1} {path}: created in {r['create_seconds']:.2f}s, lag p50 "
                        f"{r['lag_p50_ms']:.0f} p99 {r['lag_p99_ms']:.0f} max "
                        f"{r['lag_max_ms']:.0f} ms, all back "
                        f"{r['all_back_after_last_deadline_ms']} ms after the last deadline, "
                        f"missed {r['missed_by_path']}",
                        file=sys.stderr,
                    )
        finally:
            server.stop()

    result: dict[str, Any] = {
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_expiry " + " ".join(sys.argv[1:]),
        "holds": args.holds,
        "ttl_s": args.ttl,
        "sweep_interval_s": args.interval,
        "rounds": rounds,
        "audit_clean": all(r["audit_clean"] for r in rounds),
    }
    for path in PATHS:
        mine = [r for r in rounds if r["path"] == path]
        result[path] = {
            name: summary([float(r[name]) for r in mine])
            for name in (
                "lag_p50_ms",
                "lag_p99_ms",
                "lag_max_ms",
                "notify_p50_ms",
                "notify_p99_ms",
                "deadline_spread_ms",
                "create_seconds",
            )
        }
        backs = [r["all_back_after_last_deadline_ms"] for r in mine]
        result[path]["all_back_after_last_deadline_ms"] = (
            summary([float(b) for b in backs]) if all(b is not None for b in backs) else None
        )
        result[path]["missed"] = sum(r["missed_by_path"] for r in mine)
    path_out = write_result("expiry", result)
    print(f"machine: {result['machine']}; redis on core 0, engine on core 1: {pinned}")
    print(f"{'path':<10}{'metric':<34}{'median':>10}{'min':>10}{'max':>10}")
    for path in PATHS:
        for name, s in result[path].items():
            if isinstance(s, dict):
                print(
                    f"{path:<10}{name:<34}{s['median']:>10,.0f}{s['min']:>10,.0f}{s['max']:>10,.0f}"
                )
        print(f"{path:<10}{'missed (released by a later sweep)':<34}{result[path]['missed']:>10}")
    print(
        f"target: listener p99 <= 1,000 ms after the deadline; sweeper-only max <= "
        f"{args.interval * 1000:,.0f} ms (one interval) + the sweep's own time; "
        f"audit clean: {result['audit_clean']}; written to {path_out}"
    )
    ok = result["audit_clean"] and all(r["released"] == args.holds for r in rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
