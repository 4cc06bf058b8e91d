"""Benchmark of the webhook dispatcher and of the CSV export.

Standalone: starts its own redis-server and temporary SQLite stores, a local receiver in
a separate process (asyncio HTTP/1.1, keep-alive, answers 200 at once), and one
:class:`~api.webhooks.dispatcher.WebhookDispatcher` in this process.

* **Throughput:** N holds + confirms made first (2N messages backlogged in the order
  log), then the dispatcher drains them: deliveries/s of one dispatcher process.
* **Delay:** with the dispatcher running, confirms at a steady rate; the delay from the
  confirm (``confirmadoEn``, the Redis clock) to the receiver's arrival time, p50/p99.
* **Export:** ``--export`` orders stored, then the whole CSV produced by
  :class:`~api.services.exports.ExportService`: time, and peak Python memory
  (tracemalloc, a second run) of the export alone.

    .venv/bin/python -m loadtest.bench_webhooks --orders 5000 --rate 200 --steady 2000 \
        --export 100000

Prints JSON and writes ``var/bench/webhooks.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from api.security import Principal
from api.services.exports import ExportService
from api.webhooks import signing
from api.webhooks.dispatcher import DispatchConfig, WebhookDispatcher
from engine.core import Engine, EngineConfig
from engine.models import CategorySpec, Order, Ticket
from engine.redis_server import RedisServer, free_port
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.webhooks import AsyncWebhookStore, WebhookEndpoint
from persistence.webhooks_sqlite import SQLiteWebhookStore

# -- the receiver (its own process) ------------------------------------------------------


def _receiver(port: int, ready: Any, results: Any, stop: Any) -> None:
    arrivals: list[tuple[str, float, bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                msg_id = ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    lname = name.strip().lower()
                    if lname == b"content-length":
                        length = int(value)
                    elif lname == b"webhook-id":
                        msg_id = value.strip().decode()
                body = await reader.readexactly(length)
                arrivals.append((msg_id, time.time() * 1000, body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        while not stop.is_set():  # noqa: ASYNC110 (a multiprocessing Event, not asyncio's)
            await asyncio.sleep(0.05)
        server.close()
        out = []
        for msg_id, at, body in arrivals:
            doc = json.loads(body)
            out.append((msg_id, doc["type"], doc["data"].get("confirmadoEn"), at))
        results.put(out)

    asyncio.run(main())


def _iso_ms(value: str | None) -> float | None:
    if not value:
        return None
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


# -- the benchmark -----------------------------------------------------------------------


async def _orders(engine: Engine, event_id: str, n: int, chunk: int = 200) -> None:
    for start in range(0, n, chunk):
        held = await asyncio.gather(
            *(
                engine.hold(event_id, f"u{(start + i) % 997}", [("gen", 1)])
                for i in range(min(chunk, n - start))
            )
        )
        await asyncio.gather(
            *(
                engine.confirm(
                    h.order.id, h.order.user_id, payment_method="card", transaction_id=h.order.id
                )
                for h in held
            )
        )


async def bench_dispatch(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    server = RedisServer(data_dir=root / "redis", appendonly=True).start()
    redis = Redis.from_url(server.url)
    store = AsyncStore(SQLiteStore(root / "store" / "onsale.db"))
    hooks = AsyncWebhookStore(SQLiteWebhookStore(root / "store" / "webhooks.db"))
    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready, stop_rx, results = ctx.Event(), ctx.Event(), ctx.Queue()
    receiver = ctx.Process(target=_receiver, args=(port, ready, results, stop_rx), daemon=True)
    receiver.start()
    ready.wait(30)
    stop = asyncio.Event()
    try:
        engine = Engine(redis, EngineConfig(hold_ttl_ms=3_600_000))
        await engine.start()
        event_id = "benchwh"
        total = args.orders + args.steady
        await engine.arm_event(
            event_id, [CategorySpec(id="gen", name="General", price=10.0, total=total)]
        )
        await hooks.create_endpoint(
            WebhookEndpoint(
                id="bench",
                owner_id="bench",
                url=f"http://127.0.0.1:{port}/hook",
                types=["order.created", "order.confirmed"],
                event_id=event_id,
                secret=signing.new_secret(),
                created_at=int(time.time() * 1000) - 1000,
            )
        )
        await _orders(engine, event_id, args.orders)
        dispatcher = WebhookDispatcher(
            redis,
            engine,
            hooks,
            store,
            DispatchConfig(
                concurrency=args.concurrency, per_endpoint=args.concurrency, poll_s=0.05
            ),
            name="bench",
        )
        t0 = time.perf_counter()
        task = asyncio.create_task(dispatcher.run(stop))
        want = 2 * args.orders
        while dispatcher.stats.delivered < want:
            await asyncio.sleep(0.02)
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"only {dispatcher.stats.delivered} of {want} delivered")
        drain_s = time.perf_counter() - t0
        # steady confirms while the dispatcher runs: confirm -> delivery delay
        t1 = time.perf_counter()
        per_tick = max(1, args.rate // 20)
        made = 0
        while made < args.steady:
            n = min(per_tick, args.steady - made)
            await _orders(engine, event_id, n, chunk=n)
            made += n
            await asyncio.sleep(max(0.0, t1 + made / args.rate - time.perf_counter()))
        want += 2 * args.steady
        while dispatcher.stats.delivered < want:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.02)
        stop.set()
        await task
    finally:
        stop.set()
        stop_rx.set()
        arrivals = results.get(timeout=60)
        receiver.join(10)
        await hooks.close()
        await store.close()
        await redis.aclose()
        server.stop()
    delays = sorted(
        at - confirmed
        for _, kind, c, at in arrivals[2 * args.orders :]
        if kind == "order.confirmed" and (confirmed := _iso_ms(c)) is not None
    )
    unique = len({a[0] for a in arrivals})
    return {
        "backlog_messages": 2 * args.orders,
        "drain_seconds": round(drain_s, 3),
        "deliveries_per_second": round(2 * args.orders / drain_s),
        "steady_confirms_per_second": args.rate,
        "steady_confirms": args.steady,
        "confirm_to_delivery_ms_p50": round(statistics.median(delays), 1) if delays else None,
        "confirm_to_delivery_ms_p99": round(delays[int(len(delays) * 0.99) - 1], 1)
        if delays
        else None,
        "requests_received": len(arrivals),
        "unique_deliveries": unique,
        "concurrency": args.concurrency,
    }


async def bench_export(n: int, root: Path) -> dict[str, Any]:
    sqlite = SQLiteStore(root / "export" / "onsale.db")
    base = int(time.time() * 1000)
    for start in range(0, n, 5000):
        sqlite.upsert_orders(
            [
                Order(
                    id=f"exp.{i:016x}",
                    event_id="exp",
                    user_id=f"user{i % 5000}",
                    tickets=[
                        Ticket(category_id="a", name="General", quantity=2, unit_price=25.0),
                        Ticket(category_id="b", name="VIP", quantity=1, unit_price=80.0),
                    ],
                    total=130.0,
                    status="CONFIRMED" if i % 3 else "EXPIRED",
                    expires_at=base,
                    created_at=base + i,
                    confirmed_at=base + i + 5 if i % 3 else None,
                    payment_method="card" if i % 3 else None,
                    transaction_id=f"tx{i}" if i % 3 else None,
                    version=2,
                )
                for i in range(start, min(n, start + 5000))
            ]
        )
    store = AsyncStore(sqlite)
    exports = ExportService(store)
    admin = Principal(id="admin", role="ADMIN")

    async def run() -> tuple[int, float]:
        size = 0
        started = time.perf_counter()
        async for chunk in exports.orders(status=None, event_id=None):
            size += len(chunk)
        return size, time.perf_counter() - started

    size, seconds = await run()
    tracemalloc.start()
    await run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await store.close()
    assert admin.is_admin
    return {
        "export_orders": n,
        "export_rows": 2 * n,
        "export_bytes": size,
        "export_seconds": round(seconds, 2),
        "export_rows_per_second": round(2 * n / seconds),
        "export_peak_python_mib": round(peak / 2**20, 2),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="onsale-bench-webhooks-") as tmp:
        root = Path(tmp)
        out: dict[str, Any] = {}
        if args.orders:
            out.update(await bench_dispatch(args, root))
        if args.export:
            out.update(await bench_export(args.export, root))
        out["machine"] = f"{platform.machine()} {platform.python_version()}"
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--orders", type=int, default=5000, help="backlogged orders (2 messages each)"
    )
    parser.add_argument("--steady", type=int, default=2000, help="orders confirmed at --rate")
    parser.add_argument("--rate", type=int, default=200, help="steady orders per second")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--export", type=int, default=100_000, help="orders to export (0: skip)")
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "webhooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
