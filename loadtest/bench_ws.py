"""WebSocket fan-out: N subscribers on one event while holds run at a steady rate.

The server (one worker) and Redis run on core 0; the subscribers (one asyncio process) and
the hold generator on core 1. Latency is measured from the hold script's commit (the
Redis time in the feed entry's stream id) to the subscriber's receipt; both clocks are this
machine's. Also reports how many updates reached each subscriber (conflation drops stale
stock values for slow readers by design) and the server's memory per subscriber.

    python -m loadtest.bench_ws [--subscribers 1000] [--rate 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from engine.redis_server import RedisServer, free_port
from loadtest.common import (
    create_bulk_event,
    machine,
    percentile,
    pin_pid,
    pin_prefix,
    register,
    server_env,
    wait_ready,
    write_result,
)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run(
    base: str, event: dict, token: str, args: argparse.Namespace, server_pid: int
) -> dict:
    ws_base = base.replace("http://", "ws://") + "/ws"
    latencies: list[float] = []
    received = [0] * args.subscribers
    before = rss_kb(server_pid)
    sockets = []
    for i in range(args.subscribers):
        ws = await websockets.connect(ws_base, max_queue=None)
        await ws.send(json.dumps({"event": "join:event", "data": {"eventId": event["id"]}}))
        sockets.append(ws)
        if i % 500 == 499:
            await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    after = rss_kb(server_pid)
    stop = asyncio.Event()

    async def reader(i: int, ws: websockets.ClientConnection) -> None:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return
            now = time.time() * 1000
            msg = json.loads(raw)
            if msg["event"] == "ticket:stock-update" and "id" in msg:
                received[i] += 1
                latencies.append(now - int(msg["id"].split("-")[0]))

    readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
    await asyncio.sleep(1)
    latencies.clear()
    received[:] = [0] * args.subscribers
    sent = 0
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        started = time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            tick = time.perf_counter()
            batch = max(1, args.rate // 20)
            results = await asyncio.gather(
                *(client.post("/api/orders", json=body) for _ in range(batch)),
                return_exceptions=True,
            )
            sent += sum(
                1 for r in results if not isinstance(r, BaseException) and r.status_code == 201
            )
            await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - tick)))
        elapsed = time.perf_counter() - started
    await asyncio.sleep(2)
    stop.set()
    await asyncio.gather(*readers)
    for ws in sockets:
        await ws.close()
    latencies.sort()
    return {
        "subscribers": args.subscribers,
        "updates_sent": sent,
        "updates_per_s": sent / elapsed,
        "frames_received": sum(received),
        "delivered_fraction": sum(received) / max(1, sent * args.subscribers),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p99_ms": percentile(latencies, 0.99),
        "latency_max_ms": latencies[-1] if latencies else float("nan"),
        "server_rss_kb_before": before,
        "server_rss_kb_after_subscribe": after,
        "server_kb_per_subscriber": (after - before) / args.subscribers,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100, help="holds per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        assert redis.process is not None
        port = free_port()
        env = server_env(redis.url, tmp, port)
        server = subprocess.Popen(
            [
                "bash",
                "-c",
                f"ulimit -n 65536; exec {' '.join(pin_prefix(0))} "
                f"{sys.executable} -m api.cli serve",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pinned = pin_pid(redis.process.pid, 0) and pin_pid(os.getpid(), 1)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            org = register(base, "org@bench.test", role="ORGANIZADOR")
            buyer = register(base, "b@bench.test")
            event = create_bulk_event(base, org, "Fanout")
            server_pid = server.pid  # bash execs taskset, which execs python
            result = asyncio.run(run(base, event, buyer, args, server_pid))
        finally:
            server.terminate()
            server.wait(20)
            redis.stop()
    result.update(
        {
            "machine": machine(),
            "pinned": pinned,
            "command": "python -m loadtest.bench_ws " + " ".join(sys.argv[1:]),
        }
    )
    path = write_result("ws", result)
    for k, v in result.items():
        if k not in ("machine",):
            print(f"{k:<32}{v:,.2f}" if isinstance(v, float) else f"{k:<32}{v}")
    print("target: 5,000 subscribers on one worker; p99 <= 200 ms at 500 updates/s")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
