"""WebSocket fan-out: N subscribers on one event while holds run at a steady rate.

The server (one worker) runs alone on core 0; the subscribers, the hold generator and Redis
on core 1 (``--redis-core 0`` puts Redis beside the server instead). Redis is its own
service (its own machine in production), as in ``bench_http``: on core 0 it preempted the
worker for every script it ran, and the worker's fan-out waited. The subscribers are one
Node process (``loadtest/wsclient/fanout.mjs``, the ``ws`` package; ``npm ci`` runs when
its node_modules is missing) or, with ``--client python`` or without node, this process
with the ``websockets`` library, which saturates its core long before that (300
subscribers at 100 updates/s). The holds come from their own process, paced open-loop
(requests start on schedule, up to ``--hold-connections`` in flight, on connections
opened beforehand): a raw keep-alive HTTP/1.1 sender by default, or httpx
(``--hold-sender httpx``), which tops out near 300/s on a whole core. The server's stacks
over the window can be sampled with ``--py-spy FILE`` (py-spy installed by hand).

Latency is measured from the hold script's commit (the ms part of the feed entry's stream
id, Redis's clock) to the subscriber's receipt, both this machine's clock, for the updates
committed inside the measurement window (after ``--warmup``). The achieved rate is what
Redis committed in the window (feed entries), not what was asked. Also reports how many
updates reached each subscriber (conflation drops stale stock values for slow readers by
design), the CPU of the server and of the client (1.0 = a whole core: a saturated client
measures itself) and the server's memory per subscriber.

    python -m loadtest.bench_ws [--subscribers 1000] [--rate 100] [--seconds 10]
                                [--client node|python] [--hold-sender raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

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

WSCLIENT = Path(__file__).resolve().parent / "wsclient"
DRAIN_S = 2.0


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int, system_only: bool = False) -> float:
    """User + system (or only system) CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[12]) if system_only else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def core_busy_s() -> dict[str, float]:
    """Busy (non-idle) CPU seconds of each core so far, every process included: on a
    shared machine, a core's busy time minus ours is somebody else's load."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + ticks[4]
            out[f"core{name[3:]}"] = (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")
    return out


def now_ms() -> int:
    return int(time.time() * 1000)


# -- the hold generator (its own process) ------------------------------------------------


class Pacer:
    """Open-loop schedule: ``rate`` request starts per second for ``seconds``, handed to
    the senders as tokens; a token that waits for a free connection is a late start, and
    one still waiting at the end is dropped (a saturated server is not fed a backlog)."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.rate, self.seconds = rate, seconds
        self.tokens: asyncio.Queue[float | None] = asyncio.Queue()
        self.issued = 0
        self.late = 0
        self.dropped = 0
        self.sending = 0.0
        self.done = False
        self.latencies: list[float] = []  # ms from scheduled start to response
        self.pool_s = 0.0  # time to open the connections before the schedule

    async def run(self, senders: int) -> None:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < self.seconds:
            due = int(self.rate * elapsed) + 1 - self.issued
            for _ in range(due):
                self.tokens.put_nowait(started + self.issued / self.rate)  # its slot
                self.issued += 1
            await asyncio.sleep(0.002)
        self.sending = time.perf_counter() - started
        self.done = True
        while not self.tokens.empty():
            self.tokens.get_nowait()
            self.dropped += 1
        for _ in range(senders):
            self.tokens.put_nowait(None)

    async def next(self) -> float | None:
        """The scheduled start of the next request (None: the schedule is over)."""
        token = await self.tokens.get()
        if token is None or self.done:
            return None
        if time.perf_counter() - token > 0.01:
            self.late += 1
        return token


async def send_holds_raw(spec: dict[str, Any], pacer: Pacer) -> tuple[int, int]:
    """Keep-alive HTTP/1.1 on ``connections`` plain asyncio streams, one request in
    flight per connection, the request bytes built once:
    ~0.2 ms of CPU per hold, where httpx spends ~3 ms (it tops out near 300/s on a whole
    core)."""
    url = httpx.URL(spec["base"])
    body = json.dumps(spec["body"]).encode()
    request = (
        f"POST /api/orders HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {spec['token']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    ok = failed = 0

    warmup = f"GET /health/live HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n\r\n".encode()

    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes = request
    ) -> bool:
        """One request; whether the server keeps the connection open."""
        nonlocal ok, failed
        writer.write(data)
        status = await reader.readline()
        if not status:
            raise ConnectionResetError("closed by the server")
        length, keep = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
        await reader.readexactly(length)
        if data is warmup:
            return keep
        if status.split(b" ", 2)[1:2] == [b"201"]:
            ok += 1
        else:
            failed += 1
        return keep

    async def connection(stream: Stream | None) -> None:
        nonlocal failed
        while (scheduled := await pacer.next()) is not None:
            for attempt in (1, 2):  # an idle keep-alive connection may have been closed
                try:
                    if stream is None:
                        stream = await asyncio.open_connection(url.host, url.port)
                    keep = await exchange(*stream)
                    pacer.latencies.append((time.perf_counter() - scheduled) * 1000)
                    if not keep:
                        stream[1].close()
                        stream = None
                    break
                except (OSError, asyncio.IncompleteReadError):
                    if stream is not None:
                        stream[1].close()
                        stream = None
                    if attempt == 2:
                        failed += 1
        if stream is not None:
            stream[1].close()

    # Opened, and each used once, before the schedule starts: a server busy with fan-out
    # takes seconds to serve a new connection's first request, which would measure
    # connection setup, not holds.
    async def opened() -> Stream:
        stream = await asyncio.open_connection(url.host, url.port)
        await exchange(*stream, data=warmup)
        return stream

    started = time.perf_counter()
    streams: list[Stream | None] = []
    for _ in range(0, spec["connections"], 64):
        batch = min(64, spec["connections"] - len(streams))
        streams += await asyncio.gather(*(opened() for _ in range(batch)))
    pacer.pool_s = time.perf_counter() - started
    print(json.dumps({"ready": True}), flush=True)  # the schedule starts now
    await asyncio.gather(pacer.run(len(streams)), *(connection(s) for s in streams))
    return ok, failed


async def send_holds_httpx(spec: dict[str, Any], pacer: Pacer) -> tuple[int, int]:
    """The same schedule through one httpx AsyncClient (its keep-alive pool)."""
    conns = spec["connections"]
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    ok = failed = 0
    async with httpx.AsyncClient(
        base_url=spec["base"],
        headers={"Authorization": f"Bearer {spec['token']}"},
        limits=limits,
        timeout=30,
    ) as client:

        async def connection() -> None:
            nonlocal ok, failed
            while (scheduled := await pacer.next()) is not None:
                try:
                    r = await client.post("/api/orders", json=spec["body"])
                except httpx.HTTPError:
                    failed += 1
                    continue
                pacer.latencies.append((time.perf_counter() - scheduled) * 1000)
                if r.status_code == 201:
                    ok += 1
                else:
                    failed += 1

        print(json.dumps({"ready": True}), flush=True)  # the schedule starts now
        await asyncio.gather(pacer.run(conns), *(connection() for _ in range(conns)))
    return ok, failed


async def send_holds(spec: dict[str, Any]) -> dict[str, Any]:
    """POST /api/orders at ``rate`` per second for ``seconds``, open loop: requests start
    on schedule whatever the latency of the others, with at most ``connections`` in flight
    (a start that waited for a connection is counted as late, not hidden)."""
    pacer = Pacer(spec["rate"], spec["seconds"])
    started = time.perf_counter()
    sender = send_holds_raw if spec["sender"] == "raw" else send_holds_httpx
    ok, failed = await sender(spec, pacer)
    elapsed = time.perf_counter() - started
    latencies = sorted(pacer.latencies)
    return {
        "sender": spec["sender"],
        "hold_latency_p50_ms": percentile(latencies, 0.5),
        "hold_latency_p99_ms": percentile(latencies, 0.99),
        "issued": pacer.issued,
        "ok": ok,
        "failed": failed,
        "pool_open_s": pacer.pool_s,
        "late_starts": pacer.late,
        "dropped_at_end": pacer.dropped,
        "issued_per_s": pacer.issued / pacer.sending,
        "ok_per_s": ok / elapsed,
        "drain_s": elapsed - pacer.sending,
    }


def hold_sender_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        import uvloop

        result = uvloop.run(send_holds(spec))
    except ImportError:
        result = asyncio.run(send_holds(spec))
    print(json.dumps(result), flush=True)
    return 0


# -- subscribers -------------------------------------------------------------------------


class NodeSubscribers:
    """N subscribers in one Node process (loadtest/wsclient/fanout.mjs)."""

    def __init__(self, url: str, event_id: str, n: int, core: int) -> None:
        self.url, self.event_id, self.n, self.core = url, event_id, n, core
        self.proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def ensure_installed() -> None:
        if not (WSCLIENT / "node_modules" / "ws").is_dir():
            print("npm ci --prefix loadtest/wsclient", flush=True)
            subprocess.run(
                ["npm", "ci", "--prefix", str(WSCLIENT), "--no-audit", "--no-fund"],
                check=True,
                stdout=subprocess.DEVNULL,
            )

    async def connect(self) -> dict[str, Any]:
        self.ensure_installed()
        self.proc = await asyncio.create_subprocess_exec(
            *pin_prefix(self.core),
            "node",
            str(WSCLIENT / "fanout.mjs"),
            "--url",
            self.url,
            "--event",
            self.event_id,
            "--subscribers",
            str(self.n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        ready = await self._line()
        if ready.get("joined") != self.n:
            raise SystemExit(f"only {ready} of {self.n} subscribers joined")
        return ready

    async def _line(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise SystemExit("the node subscriber process exited")
        data: dict[str, Any] = json.loads(line)
        return data

    def _send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self, t0: int, t1: int) -> None:
        self._send(f"start {t0} {t1}")

    async def stop(self) -> dict[str, Any]:
        self._send("stop")
        result = await self._line()
        assert self.proc is not None
        await self.proc.wait()
        return result


class PythonSubscribers:
    """N subscribers in this process (the ``websockets`` library); saturates at ~1,000."""

    pid = None

    def __init__(self, url: str, event_id: str, n: int) -> None:
        self.url, self.event_id, self.n = url, event_id, n
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.latencies: list[float] = []
        self.received = [0] * n
        self.recording = False
        self.t0 = 0
        self.t1 = float("inf")
        self.stopping = asyncio.Event()
        self.joined = 0
        self.all_joined = asyncio.Event()
        self.cpu0 = 0.0
        self.wall0 = 0.0

    async def connect(self) -> dict[str, Any]:
        import websockets

        for i in range(self.n):
            ws = await websockets.connect(self.url, max_queue=None, compression=None)
            await ws.send(json.dumps({"event": "join:event", "data": {"eventId": self.event_id}}))
            self.sockets.append(ws)
            self.readers.append(asyncio.create_task(self._reader(i, ws)))
            if i % 500 == 499:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(self.all_joined.wait(), 60)
        return {"opened": self.n, "joined": self.joined}

    async def _reader(self, i: int, ws: Any) -> None:
        import websockets

        while not self.stopping.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return
            now = time.time() * 1000
            msg = json.loads(raw)
            if msg["event"] == "joined":
                self.joined += 1
                if self.joined == self.n:
                    self.all_joined.set()
            elif msg["event"] == "ticket:stock-update" and "id" in msg and self.recording:
                ms = int(msg["id"].split("-")[0])
                if self.t0 <= ms < self.t1:
                    self.received[i] += 1
                    self.latencies.append(now - ms)

    async def start(self, t0: int, t1: int) -> None:
        self.t0, self.t1 = t0, t1
        self.latencies.clear()
        self.received = [0] * self.n
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        self.recording = True

    async def stop(self) -> dict[str, Any]:
        self.recording = False
        cpu = (time.process_time() - self.cpu0) / (time.perf_counter() - self.wall0)
        self.stopping.set()
        await asyncio.gather(*self.readers)
        for ws in self.sockets:
            await ws.close()
        lat = sorted(self.latencies)
        per = sorted(self.received)
        return {
            "opened": self.n,
            "joined": self.joined,
            "open_at_end": self.n,
            "frames": len(lat),
            "latency_p50_ms": percentile(lat, 0.5),
            "latency_p99_ms": percentile(lat, 0.99),
            "latency_max_ms": lat[-1] if lat else float("nan"),
            "frames_per_subscriber": {"min": per[0], "p50": per[len(per) // 2], "max": per[-1]},
            "client_cpu": cpu,
        }


# -- the run -----------------------------------------------------------------------------


async def count_committed(redis_url: str, event_id: str, t0: int, t1: int) -> int:
    """Stock updates the feed receives with commit times in [t0, t1), counted as they
    arrive: the feed is capped (~10,000 entries, two per hold), so a long run at 500/s
    would have trimmed the window's start by the end."""
    from redis.asyncio import Redis

    from engine import keys

    stream, count, after = keys.feed(event_id), 0, str(t0)
    async with Redis.from_url(redis_url) as r:
        first: Any = await r.xrange(stream, count=1)
        if first and int(first[0][0].split(b"-")[0]) > t0:
            raise SystemExit("the feed was trimmed before the window began")
        while True:
            past_end = time.time() * 1000 > t1 + 500  # commits before t1 are all in now
            entries: Any = await r.xrange(stream, min=after, count=5000)
            for raw_id, fields in entries:
                ms = int(raw_id.split(b"-")[0])
                if ms < t1 and fields.get(b"event") == b"ticket:stock-update":
                    count += 1
            if entries:
                after = "(" + entries[-1][0].decode()
            if len(entries) < 5000:
                if past_end:
                    return count
                await asyncio.sleep(0.25)


async def run(
    base: str,
    event: dict[str, Any],
    token: str,
    args: argparse.Namespace,
    server_pid: int,
    redis_url: str,
    redis_pid: int,
) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://") + "/ws"
    subs: NodeSubscribers | PythonSubscribers
    if args.client == "node":
        subs = NodeSubscribers(ws_url, event["id"], args.subscribers, core=1)
    else:
        subs = PythonSubscribers(ws_url, event["id"], args.subscribers)
    before = rss_kb(server_pid)
    connect_started = time.perf_counter()
    await subs.connect()
    connect_s = time.perf_counter() - connect_started
    await asyncio.sleep(2)
    after = rss_kb(server_pid)

    spec = {
        "base": base,
        "token": token,
        "rate": args.rate,
        "seconds": args.warmup + args.seconds,
        "connections": args.hold_connections,
        "sender": args.hold_sender,
        "body": {
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
        },
    }
    holds = await asyncio.create_subprocess_exec(
        *pin_prefix(1),
        sys.executable,
        "-m",
        "loadtest.bench_ws",
        "--hold-process",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
    )
    assert holds.stdout is not None
    await holds.stdout.readline()  # its connections are open: the schedule begins
    await asyncio.sleep(args.warmup)
    t0 = now_ms()
    t1 = t0 + int(args.seconds * 1000)
    await subs.start(t0, t1)
    counting = asyncio.create_task(count_committed(redis_url, event["id"], t0, t1))
    pids = {
        "server": server_pid,
        "redis": redis_pid,
        "client": subs.pid if subs.pid is not None else os.getpid(),
        "holds": holds.pid,
    }
    if subs.pid is not None:
        pids["bench"] = os.getpid()
    cpu0 = {k: cpu_s(pid) for k, pid in pids.items()}
    sys0 = {k: cpu_s(pids[k], system_only=True) for k in ("server", "client")}
    cores0 = core_busy_s()
    wall0 = time.perf_counter()
    profiler = None
    if args.py_spy:
        # Sampling from outside: the server is not slowed (py-spy reads its memory).
        profiler = await asyncio.create_subprocess_exec(
            *pin_prefix(1),
            "py-spy",
            "record",
            "--pid",
            str(server_pid),
            "--duration",
            str(max(1, int(args.seconds))),
            "--rate",
            "400",
            "--format",
            "raw",
            "--output",
            args.py_spy,
            "--nonblocking",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    await asyncio.sleep(max(0.0, t1 / 1000 - time.time()))
    wall = time.perf_counter() - wall0
    cpu = {k: (cpu_s(pid) - cpu0[k]) / wall for k, pid in pids.items()}
    for k in ("server", "client"):
        cpu[f"{k}_sys"] = (cpu_s(pids[k], system_only=True) - sys0[k]) / wall
    cores = {k: (v - cores0[k]) / wall for k, v in core_busy_s().items()}
    if "core1" in cores:
        # What else ran on our cores (another benchmark, the kernel's softirqs): a run
        # with much of it measured the neighbour too.
        ours1 = cpu["client"] + cpu["holds"] + cpu.get("bench", 0.0)
        cores["others0"] = cores["core0"] - cpu["server"] - cpu["redis"]
        cores["others1"] = cores["core1"] - ours1
    if profiler is not None:
        await asyncio.wait_for(profiler.wait(), 30)
    out, _ = await holds.communicate()
    hold_stats = json.loads(out.decode().strip().splitlines()[-1])
    await asyncio.sleep(DRAIN_S)
    client = await subs.stop()
    committed = await counting
    frames = client["frames"]
    return {
        "client": args.client,
        "subscribers": args.subscribers,
        "connect_s": connect_s,
        "updates_asked_per_s": args.rate,
        "updates_sent": committed,
        "updates_per_s": committed / ((t1 - t0) / 1000),
        "window_s": (t1 - t0) / 1000,
        "holds": hold_stats,
        "frames_received": frames,
        "delivered_fraction": frames / max(1, committed * args.subscribers),
        "frames_per_subscriber": client["frames_per_subscriber"],
        "latency_p50_ms": client["latency_p50_ms"],
        "latency_p99_ms": client["latency_p99_ms"],
        "latency_max_ms": client["latency_max_ms"],
        "sockets_open_at_end": client.get("open_at_end"),
        "cpu_cores": cpu,
        "core_busy": cores,
        "client_detail": client,
        "server_rss_kb_before": before,
        "server_rss_kb_after_subscribe": after,
        "server_kb_per_subscriber": (after - before) / args.subscribers,
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--hold-process":
        return hold_sender_main(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100, help="holds per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0, help="holds before the window")
    parser.add_argument(
        "--client",
        choices=("node", "python"),
        default="node" if shutil.which("node") else "python",
        help="subscriber process: node (loadtest/wsclient) or python (websockets)",
    )
    parser.add_argument(
        "--hold-connections", type=int, default=1024, help="hold requests in flight at most"
    )
    parser.add_argument(
        "--hold-sender",
        choices=("raw", "httpx"),
        default="raw",
        help="hold client: raw keep-alive HTTP/1.1 (default) or httpx (~300/s at most)",
    )
    parser.add_argument(
        "--redis-core",
        type=int,
        choices=(0, 1),
        default=1,
        help="the core Redis is pinned to (default 1, beside the load generators)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="profile the server over the window with py-spy (collapsed stacks to FILE)",
    )
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
        pinned = pin_pid(redis.process.pid, args.redis_core) and pin_pid(os.getpid(), 1)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            org = register(base, "org@bench.test", role="ORGANIZADOR")
            buyer = register(base, "b@bench.test")
            event = create_bulk_event(base, org, "Fanout")
            server_pid = server.pid  # bash execs taskset, which execs python
            result = asyncio.run(
                run(base, event, buyer, args, server_pid, redis.url, redis.process.pid)
            )
        finally:
            server.terminate()
            server.wait(20)
            redis.stop()
    argv = " ".join(sys.argv[1:])
    result.update(
        {
            "machine": machine(),
            "pinned": pinned,
            "command": f"python -m loadtest.bench_ws {argv}".strip(),
        }
    )
    path = write_result("ws", result)
    for k, v in result.items():
        if k in ("machine", "client_detail"):
            continue
        if isinstance(v, dict):
            v = ", ".join(
                f"{a}={b:.2f}" if isinstance(b, float) else f"{a}={b}" for a, b in v.items()
            )
        print(f"{k:<32}{v:,.2f}" if isinstance(v, float) else f"{k:<32}{v}")
    print("target: 5,000 subscribers on one worker; p99 <= 200 ms at 500 updates/s")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
