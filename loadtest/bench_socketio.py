"""Socket.IO vs /ws: delivery latency of the same updates to both kinds of subscriber.

One API worker (and its Redis) on core 0; in one asyncio process on core 1, N subscribers
on ``/ws`` and N on ``/socket.io/`` (WebSocket transport) join the same event, then holds
run at a steady rate. Every stock update reaches both groups from the same hub, in the
same run, so the ratio compares the two transports and nothing else. Latency is from the
hold script's commit (the Redis time in the feed entry's stream id, ms) to receipt.

Both groups use the same client library (``websockets``) and the same JSON decoding; the
Socket.IO subscribers speak Engine.IO 4 by hand (handshake, ``40``, ``42[...]``, pong), so
client cost is equal and the difference is the server's. Correctness against the official
JavaScript client is tests/integration/test_socketio_js.py's job, not this one's.

    python -m loadtest.bench_socketio [--subscribers 250,500,1000] [--rate 20] [--seconds 8]
        [--repeat 3]

``--subscribers`` takes a list (``250,500,1000``): ``--repeat`` runs per level, each on a
fresh server, summarised by medians; subscribers per worker = 2 x level. Delivery order
inside one fan-out favours ``/ws`` a little: its writer sends directly, while a Socket.IO
batch is handed to Engine.IO's writer task, which runs on the next pass of the event loop.
Results in ``var/bench/socketio.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from engine.redis_server import RedisServer, free_port
from loadtest.common import machine, percentile, pin_pid, pin_prefix, server_env, write_result

TRANSPORTS = ("ws", "socketio")
TARGET_P99_MS = 200.0


@dataclass
class Group:
    """One transport's subscribers and what they measured."""

    name: str
    sockets: list[Any] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    rss_kb: int = 0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def subscribe_ws(base: str, event_id: str) -> Any:
    ws = await websockets.connect(base.replace("http://", "ws://") + "/ws", max_queue=None)
    await ws.send(json.dumps({"event": "join:event", "data": {"eventId": event_id}}))
    return ws


async def subscribe_socketio(base: str, event_id: str) -> Any:
    url = base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    ws = await websockets.connect(url, max_queue=None)
    opened = await ws.recv()
    assert str(opened).startswith("0{"), opened
    await ws.send("40")
    connected = await ws.recv()
    assert str(connected).startswith("40{"), connected
    await ws.send("42" + json.dumps(["join:event", {"eventId": event_id}]))
    return ws


async def read_ws(group: Group, ws: Any) -> None:
    async for raw in ws:
        now = time.time() * 1000
        msg = json.loads(raw)
        if msg["event"] == "ticket:stock-update" and "id" in msg:
            group.received += 1
            group.latencies.append(now - int(msg["id"].split("-")[0]))


async def read_socketio(group: Group, ws: Any) -> None:
    async for raw in ws:
        now = time.time() * 1000
        if raw == "2":  # Engine.IO ping
            await ws.send("3")
            continue
        if not raw.startswith("42"):
            continue
        args = json.loads(raw[2:])
        if args[0] == "ticket:stock-update" and len(args) > 2:
            group.received += 1
            group.latencies.append(now - int(args[2].split("-")[0]))


async def measure(
    base: str, event: dict[str, Any], token: str, level: int, args: argparse.Namespace, pid: int
) -> dict[str, Any]:
    groups = {name: Group(name) for name in TRANSPORTS}
    subscribe = {"ws": subscribe_ws, "socketio": subscribe_socketio}
    for name in TRANSPORTS:
        before = rss_kb(pid)
        for i in range(level):
            groups[name].sockets.append(await subscribe[name](base, event["id"]))
            if i % 250 == 249:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        groups[name].rss_kb = rss_kb(pid) - before
    readers = [
        asyncio.create_task((read_ws if name == "ws" else read_socketio)(groups[name], ws))
        for name in TRANSPORTS
        for ws in groups[name].sockets
    ]
    await asyncio.sleep(1.5)  # snapshots and acks read and discarded
    for g in groups.values():
        g.latencies.clear()
        g.received = 0
    # The holds come from a process of their own, so their pace does not depend on how
    # busy the subscribers' event loop is.
    generator = await asyncio.create_subprocess_exec(
        *pin_prefix(1),
        sys.executable,
        "-m",
        "loadtest.bench_socketio",
        "--generate",
        json.dumps(
            {
                "base": base,
                "token": token,
                "eventId": event["id"],
                "categoryId": event["categorias"][0]["id"],
                "rate": args.rate,
                "seconds": args.seconds,
            }
        ),
        stdout=asyncio.subprocess.PIPE,
    )
    out_raw, _ = await generator.communicate()
    generated = json.loads(out_raw)
    sent, elapsed = generated["sent"], generated["elapsed"]
    await asyncio.sleep(2)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for g in groups.values():
        await asyncio.gather(*(ws.close() for ws in g.sockets), return_exceptions=True)
    out: dict[str, Any] = {
        "subscribers_per_transport": level,
        "subscribers_per_worker": level * len(TRANSPORTS),
        "updates_sent": sent,
        "updates_per_s": sent / elapsed,
    }
    for name, g in groups.items():
        g.latencies.sort()
        out[name] = {
            "latency_p50_ms": percentile(g.latencies, 0.5),
            "latency_p99_ms": percentile(g.latencies, 0.99),
            "latency_max_ms": g.latencies[-1] if g.latencies else float("nan"),
            "frames_received": g.received,
            "delivered_fraction": g.received / max(1, sent * level),
            "server_kb_per_subscriber": g.rss_kb / level,
        }
    for q in ("p50", "p99"):
        ws_ms = out["ws"][f"latency_{q}_ms"]
        out[f"ratio_{q}_socketio_over_ws"] = out["socketio"][f"latency_{q}_ms"] / max(ws_ms, 1.0)
    out["meets_target"] = all(out[n]["latency_p99_ms"] <= TARGET_P99_MS for n in TRANSPORTS)
    await asyncio.sleep(1)
    return out


def start_server(tmp: Path, redis: RedisServer) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = server_env(redis.url, tmp, port)
    # exec all the way down: the Popen pid is the server's own.
    server = subprocess.Popen(
        [
            "bash",
            "-c",
            f"ulimit -n 65536; exec {' '.join(pin_prefix(0))} {sys.executable} -m api.cli serve",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("API did not become ready")


def setup_event(base: str) -> tuple[dict[str, Any], str]:
    def register(email: str, role: str) -> str:
        r = httpx.post(
            f"{base}/api/auth/register",
            json={"nombre": "Bench", "email": email, "password": "Secret123", "role": role},
        )
        r.raise_for_status()
        token: str = r.json()["token"]
        return token

    org = register("org@bench.test", "ORGANIZADOR")
    buyer = register("buyer@bench.test", "COMPRADOR")
    r = httpx.post(
        f"{base}/api/events",
        headers={"Authorization": f"Bearer {org}"},
        json={
            "nombre": "Fan-out",
            "fecha": "2030-01-01T00:00:00Z",
            "ubicacion": "Lab",
            "capacidadTotal": 10_000_000,
            "precioBase": 1,
            "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 10_000_000}],
        },
    )
    r.raise_for_status()
    return r.json(), buyer


def generate(spec: dict[str, Any]) -> None:
    """Holds at a steady rate on one keep-alive connection; prints what was sent."""
    body = {
        "eventoId": spec["eventId"],
        "tickets": [{"categoriaId": spec["categoryId"], "cantidad": 1}],
    }
    interval = 1.0 / spec["rate"]
    sent = 0
    with httpx.Client(
        base_url=spec["base"], headers={"Authorization": f"Bearer {spec['token']}"}, timeout=30
    ) as client:
        started = time.perf_counter()
        next_at = started
        while time.perf_counter() - started < spec["seconds"]:
            if client.post("/api/orders", json=body).status_code == 201:
                sent += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        elapsed = time.perf_counter() - started
    print(json.dumps({"sent": sent, "elapsed": elapsed}))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--generate":
        generate(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", default="500", help="per transport; a list: 250,500")
    parser.add_argument("--rate", type=int, default=20, help="holds per second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per level (medians)")
    args = parser.parse_args()
    levels = [int(n) for n in args.subscribers.split(",")]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    runs: list[dict[str, Any]] = []
    pinned = False
    for level in levels:
        for _ in range(args.repeat):
            # A fresh server (and Redis) per run: memory figures start from the same heap.
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                redis = RedisServer(tmp / "redis", appendonly=False).start()
                assert redis.process is not None
                server, base = start_server(tmp, redis)
                pinned = pin_pid(redis.process.pid, 0) and pin_pid(os.getpid(), 1)
                try:
                    event, buyer = setup_event(base)
                    runs.append(asyncio.run(measure(base, event, buyer, level, args, server.pid)))
                finally:
                    server.terminate()
                    server.wait(30)
                    redis.stop()
    medians = [median_of([r for r in runs if r["subscribers_per_transport"] == n]) for n in levels]
    result = {
        "levels": medians,
        "runs": runs,
        "rate": args.rate,
        "seconds": args.seconds,
        "repeat": args.repeat,
        "target": f"p99 <= {TARGET_P99_MS:.0f} ms on both transports",
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_socketio " + " ".join(sys.argv[1:]),
    }
    path = write_result("socketio", result)
    print(f"{result['command']}  (pinned: {pinned}; medians of {args.repeat} runs per level)")
    print(
        f"{'subs/worker':>11} {'upd/s':>6} | {'ws p50':>7} {'ws p99':>7} {'sio p50':>7} "
        f"{'sio p99':>7} | {'p50 x':>6} {'p99 x':>6} | {'ws KB/sub':>9} {'sio KB/sub':>10} "
        f"| {'ws dlv':>6} {'sio dlv':>7}"
    )
    for r in medians:
        ws, sio = r["ws"], r["socketio"]
        print(
            f"{r['subscribers_per_worker']:>11.0f} {r['updates_per_s']:>6.0f} | "
            f"{ws['latency_p50_ms']:>7.1f} {ws['latency_p99_ms']:>7.1f} "
            f"{sio['latency_p50_ms']:>7.1f} {sio['latency_p99_ms']:>7.1f} | "
            f"{r['ratio_p50_socketio_over_ws']:>6.2f} {r['ratio_p99_socketio_over_ws']:>6.2f} | "
            f"{ws['server_kb_per_subscriber']:>9.1f} {sio['server_kb_per_subscriber']:>10.1f} | "
            f"{ws['delivered_fraction']:>6.2f} {sio['delivered_fraction']:>7.2f}"
        )
    print(f"latencies in ms; x = Socket.IO / ws (median of per-run ratios); {result['target']}")
    print(f"written to {path}")
    return 0


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Field-wise medians of runs at one level (ratios: the median of per-run ratios)."""

    def med(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: med([v[k] for v in values]) for k in values[0]}
        if isinstance(values[0], bool):
            return sum(values) > len(values) / 2
        return statistics.median(values)

    return {k: med([r[k] for r in runs]) for k in runs[0]}


if __name__ == "__main__":
    raise SystemExit(main())
