"""Admission-queue benchmark. Parts (``--parts``, default all, in this order):

``engine`` (one embedded redis-server, no HTTP):
  joins/s vs holds/s of the same run through the engine's pipelined connection; the
  opening of an N-buyer pre-queue; a freed ticket (a cancel) to the next admission with
  the :class:`Admitter` at its default 200 ms poll: p50/p99.

``http`` (as loadtest/bench_http pins it: one ``onsale serve`` worker on core 0; wrk, Redis
  and the order writer on core 1): ``POST .../queue/join`` vs ``POST /api/orders``
  alternately (J H J H ...), ``--rounds`` x ``--seconds``, every request with its own
  buyer's JWT (wrk Lua script cycling through ``--tokens`` registered buyers; each round
  on a fresh event, so every join is a new place and every hold a new buyer's; accounts
  are registered first: every request checks that its user exists). Joins/s and holds/s
  per API core, the ratio join / hold per round (median, min, max) and the server's CPU per request.
  ``--workers N`` runs ``onsale serve --workers N`` instead, on cores 0..N-1 (unpinned when
  N exceeds the cores; wrk, Redis and the writer stay on core 1, so with N = 2 on two cores
  they share core 1 with a worker): the server's CPU is summed over its whole process tree
  and the per-core figure is requests/s divided by the cores the server used (its CPU
  seconds over the run's seconds).

``ws``: ``--ws N`` signed-in buyers queued for a 1-ticket event, each on its own WebSocket
  (``join:queue``; loadtest/wsclient/queue_crowd.mjs in one Node process on core 1). Each
  sample the admitted buyer holds and cancels (HTTP): the admitter admits the next buyer,
  and every buyer behind moves one place. Latency = receipt of a buyer's ``queue:position``
  with the new ``delante`` - the admission's commit (the ms of its ``queue:admitted`` feed
  entry): p50/p99/max per sample, then median/min/max over the samples. Positions are
  conflated to one a second per buyer (SPEC 10.1), so up to ~1 s of it is that tick.

``onsale``: ``--crowd C --stock S``: C signed-in buyers join the pre-queue over HTTP, wait on
  their sockets, the queue opens; admitted buyers hold 1 ticket with their token and
  confirm (``--confirm`` share) or abandon (holds expire after ``--hold-minutes``); sold-out
  buyers stop. Reports hold refusals, the time from the opening to the sell-out (the
  queue's ``agotadoEn - abiertaEn``) and to the last confirm, samples that nobody was
  admitted past the stock (loadtest/queue_check.py) and ends with ``onsale audit``.
  Every socket is a file descriptor in the server and in the crowd process: when the
  crowd does not fit one process under the open files limit (the hard limit, which
  nothing here can raise; 20,000 on the container these figures come from), the crowd
  is split over ``--servers`` N ``onsale serve`` processes (default: as many as needed),
  all on core 0 beside one another on the same Redis and store, each with its own crowd
  process (its share of the buyers).

    .venv/bin/python -m loadtest.bench_queue --parts engine --ops 20000 --pre 100000
    .venv/bin/python -m loadtest.bench_queue --parts http --rounds 3 --seconds 5
    .venv/bin/python -m loadtest.bench_queue --parts http --workers 2 --rounds 2 --seconds 5
    .venv/bin/python -m loadtest.bench_queue --parts ws --ws 5000 --ws-samples 8
    .venv/bin/python -m loadtest.bench_queue --parts onsale --crowd 20000 --stock 2000

The machine is shared: every part prints medians with min and max of its repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from engine.core import Engine
from engine.models import CategorySpec
from engine.queue import Admitter, QueueEngine, QueueSettings
from engine.redis_server import RedisServer, free_port
from loadtest.common import (
    create_bulk_event,
    machine,
    percentile,
    pin_pid,
    pin_prefix,
    register,
    server_env,
    summary,
    wait_ready,
    write_result,
)

WSCLIENT = Path(__file__).resolve().parent / "wsclient"


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


async def engine_part(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), appendonly=False).start()
        try:
            redis = Redis.from_url(server.url)
            engine = Engine(redis)
            await engine.start()
            joins, holds = await joins_vs_holds(engine, args.ops)
            print(f"engine: joins/s {joins:,.0f}  holds/s {holds:,.0f}  ratio {joins / holds:.2f}")
            seconds = await opening(engine, args.pre)
            print(f"engine: opening of a {args.pre:,} pre-queue: {seconds:.2f} s")
            lat = await freed_to_admission(engine, args.samples)
            print(
                f"engine: freed ticket -> admission ({len(lat)} samples, 200 ms poll): "
                f"p50 {_pct(lat, 0.5):.0f} ms  p99 {_pct(lat, 0.99):.0f} ms"
            )
            await redis.aclose()
        finally:
            server.stop()
    return {
        "joins_per_s": joins,
        "holds_per_s": holds,
        "ratio_join_vs_hold": joins / holds,
        "opening_s": seconds,
        "pre_queue": args.pre,
        "freed_to_admission_p50_ms": _pct(lat, 0.5),
        "freed_to_admission_p99_ms": _pct(lat, 0.99),
    }


# -- the server-level parts ------------------------------------------------------------


def _cores_prefix(workers: int) -> list[str]:
    """``taskset`` for an ``onsale serve`` of ``workers`` workers: core 0 for one (as
    loadtest/bench_http), cores 0..N-1 for N, nothing when N exceeds the cores."""
    if workers <= 1:
        return pin_prefix(0)
    if workers <= (os.cpu_count() or 1) and shutil.which("taskset"):
        return ["taskset", "-c", f"0-{workers - 1}"]
    return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants still alive (``onsale
    serve --workers N``: the supervisor and its workers)."""
    from loadtest.bench_http import cpu_seconds

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
        todo += children.get(p, [])
    return total


FD_SPARE = 1000  # descriptors a process needs beside the crowd's sockets (HTTP, Redis, files)


def fd_limit() -> int:
    """The open-file limit every process started here inherits (main() raises the soft
    limit to the hard one, at most 65,536; nothing here can raise the hard limit)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def processes_for(crowd: int) -> int:
    """How many server processes, and crowd processes, ``crowd`` sockets need: a process
    holds one descriptor per socket, and none may open more than :func:`fd_limit`."""
    return max(1, -(-crowd // max(1, fd_limit() - FD_SPARE)))


class Stack:
    """Redis (core 1), one ``onsale serve`` worker (core 0; ``workers`` N: cores 0..N-1)
    and, with ``writer``, the order writer as its own process (core 1), as
    loadtest/bench_http runs them. ``servers`` > 1: that many ``onsale serve`` processes
    on the same Redis and store, all on the same core(s) (more sockets than one process
    may open, not more CPU)."""

    def __init__(
        self, tmp: Path, writer: bool = True, workers: int = 1, servers: int = 1, **env: str
    ) -> None:
        self.workers = workers
        self.redis = RedisServer(tmp / "redis", appendonly=False).start()
        assert self.redis.process is not None
        self.port = free_port()
        self.env = server_env(
            self.redis.url,
            tmp,
            self.port,
            MAX_TICKETS_PER_ORDER="10",
            RUN_WRITER="false" if writer else "true",
            **env,
        )
        ports = [self.port] + [free_port() for _ in range(servers - 1)]
        serve = [*_cores_prefix(workers), sys.executable, "-m", "api.cli", "serve"]
        self.servers = [
            subprocess.Popen(  # the open-file limit is main()'s, inherited
                [*serve, "--workers", str(workers)],
                env={**self.env, "PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
        self.server = self.servers[0]
        self.writer = (
            subprocess.Popen(
                [*pin_prefix(1), sys.executable, "-m", "api.cli", "writer"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if writer
            else None
        )
        self.pinned = pin_pid(self.redis.process.pid, 1)
        self.bases = [f"http://127.0.0.1:{port}" for port in ports]
        self.base = self.bases[0]
        for base in self.bases:
            wait_ready(base)
        self.org = register(self.base, "org@bench.test", role="ORGANIZADOR")

    def event(self, name: str, total: int) -> dict[str, Any]:
        for attempt in range(30):  # 503 while the store catches up with a registration burst
            try:
                event: dict[str, Any] = create_bulk_event(self.base, self.org, name, total=total)
                return event
            except httpx.HTTPStatusError as e:
                if e.response.status_code != 503 or attempt == 29:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")

    def queue(self, event_id: str, opens_in_s: float, **body: Any) -> None:
        opens = datetime.now(UTC) + timedelta(seconds=opens_in_s)
        r = httpx.put(
            f"{self.base}/api/events/{event_id}/queue",
            json={"abreEn": opens.isoformat(), **body},
            headers={"Authorization": f"Bearer {self.org}"},
            timeout=30,
        )
        r.raise_for_status()

    def audit(self) -> tuple[int, str]:
        out = subprocess.run(
            [sys.executable, "-m", "api.cli", "audit"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return out.returncode, (out.stdout + out.stderr).strip()

    def stop(self) -> None:
        for proc in (*self.servers, self.writer):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.redis.stop()


WRK_TOKENS = """
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
local tokens, n, k, base, half = {}, 0, 0, 0, 0
function init(args)
  for line in io.lines("%(tokens)s") do n = n + 1; tokens[n] = line end
  half = math.floor(n / %(threads)d)
  base = tid * half
end
function request()
  k = k + 1
  local i = base + ((k - 1) %% half) + 1
  return wrk.format("POST", "%(path)s", {
    ["Authorization"] = "Bearer " .. tokens[i],
    ["Content-Type"] = "application/json",
  }, [[%(body)s]])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.errors.status, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def wrk_tokens(
    url: str,
    path: str,
    body: str,
    tokens_file: Path,
    seconds: float,
    connections: int,
    tmp: Path,
    server_pid: int,
) -> dict[str, float]:
    from loadtest.bench_http import run_wrk

    threads = 2
    script = tmp / "queue_bench.lua"
    script.write_text(
        WRK_TOKENS % {"tokens": tokens_file, "threads": threads, "path": path, "body": body}
    )
    cpu = tree_cpu_seconds(server_pid)
    got = run_wrk(script, url, seconds, connections, None, threads)
    used = tree_cpu_seconds(server_pid) - cpu  # every process of the server
    run_s = got["requests"] / got["rps"] if got["rps"] else seconds
    got["cpu_us_per_request"] = used * 1e6 / max(1, got["requests"])
    got["server_busy"] = used / run_s  # the cores the server used
    got["rps_per_core"] = got["rps"] / got["server_busy"] if used > 0 else float("nan")
    return got


def http_part(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(tmp, workers=args.workers)
        try:
            tokens_file = tmp / "tokens.txt"
            t = time.perf_counter()
            tokens_file.write_text("\n".join(register_many(stack.base, args.tokens, "h")) + "\n")
            print(f"http: {args.tokens:,} buyers registered in {time.perf_counter() - t:.1f} s")
            joins: list[dict[str, float]] = []
            holds: list[dict[str, float]] = []
            events: list[str] = []

            def join_run(seconds: float) -> dict[str, float]:
                event = stack.event(f"Queue {len(events)}", 10)
                stack.queue(event["id"], 3600, preColaMinutos=120)
                events.append(event["id"])
                return wrk_tokens(
                    stack.base,
                    f"/api/events/{event['id']}/queue/join",
                    "",
                    tokens_file,
                    seconds,
                    args.connections,
                    tmp,
                    stack.server.pid,
                )

            def hold_run(seconds: float) -> dict[str, float]:
                event = stack.event(f"Bulk {len(events)}", 10_000_000)
                events.append(event["id"])
                body = json.dumps(
                    {
                        "eventoId": event["id"],
                        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
                    }
                )
                return wrk_tokens(
                    stack.base,
                    "/api/orders",
                    body,
                    tokens_file,
                    seconds,
                    args.connections,
                    tmp,
                    stack.server.pid,
                )

            join_run(2)  # warm-up
            hold_run(2)
            for r in range(args.rounds):
                joins.append(join_run(args.seconds))
                holds.append(hold_run(args.seconds))
                print(
                    f"http round {r + 1}: joins {joins[-1]['rps']:,.0f}/s, "
                    f"holds {holds[-1]['rps']:,.0f}/s",
                    file=sys.stderr,
                )
            audit_rc, audit = stack.audit()
        finally:
            stack.stop()
    wrapped = [x["requests"] for x in joins + holds if x["requests"] > args.tokens]
    result = {
        "pinned": stack.pinned,
        "workers": args.workers,
        "server_cores": " ".join(_cores_prefix(args.workers)) or "unpinned",
        "connections": args.connections,
        "tokens": args.tokens,
        "token_reuse_runs": len(wrapped),
        "join_rps": summary([x["rps"] for x in joins]),
        "hold_rps": summary([x["rps"] for x in holds]),
        "ratio_join_vs_hold": summary(
            [j["rps"] / h["rps"] for j, h in zip(joins, holds, strict=True)]
        ),
        "join_cpu_us_per_req": summary([x["cpu_us_per_request"] for x in joins]),
        "hold_cpu_us_per_req": summary([x["cpu_us_per_request"] for x in holds]),
        "join_p50_ms": summary([x["p50_ms"] for x in joins]),
        "join_p99_ms": summary([x["p99_ms"] for x in joins]),
        "hold_p50_ms": summary([x["p50_ms"] for x in holds]),
        "hold_p99_ms": summary([x["p99_ms"] for x in holds]),
        "join_server_busy": summary([x["server_busy"] for x in joins]),
        "hold_server_busy": summary([x["server_busy"] for x in holds]),
        "join_rps_per_core": summary([x["rps_per_core"] for x in joins]),
        "hold_rps_per_core": summary([x["rps_per_core"] for x in holds]),
        "ratio_per_core": summary(
            [j["rps_per_core"] / h["rps_per_core"] for j, h in zip(joins, holds, strict=True)]
        ),
        "core1_busy": summary([x["core1_busy"] for x in joins + holds]),
        "non_2xx": sum(int(x["errors"]) for x in joins + holds),
        "audit_clean": audit_rc == 0,
        "audit": audit,
    }
    where = "core 0" if args.workers == 1 else f"{args.workers} workers ({result['server_cores']})"
    print(f"http: server on {where}; wrk, redis, writer on core 1: {stack.pinned}")
    _table(result)
    print(f"http: non-2xx {result['non_2xx']}; token reuse runs {len(wrapped)}; {audit}")
    return result


def _table(result: dict[str, Any]) -> None:
    print(f"{'metric':<26}{'median':>12}{'min':>12}{'max':>12}")
    for name, v in result.items():
        if isinstance(v, dict) and set(v) == {"median", "min", "max"}:
            print(f"{name:<26}{v['median']:>12,.2f}{v['min']:>12,.2f}{v['max']:>12,.2f}")


def register_many(base: str, n: int, tag: str) -> list[str]:
    from loadtest.users import seed

    data = seed(base, buyers=n, organizers=1, rush_events=0, concurrency=16, tag=tag)
    return [b.token for b in data.buyers]


class CrowdProcess:
    """loadtest/wsclient/queue_crowd.mjs as a child process: one JSON line per step on
    stdout, read by a thread (so a line already buffered is never waited for, as
    ``select`` + ``readline`` could), ``stop`` on stdin."""

    def __init__(self, cmd: list[str], stderr: Any = None) -> None:
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw)
        self.lines.put("")  # EOF

    def exited(self) -> BaseException:
        """What ``until`` raises when the crowd exits first."""
        return SystemExit("the node crowd exited")

    def until(self, kind: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {kind!r} line from the crowd in {timeout:.0f} s") from None
            if not raw:
                raise self.exited()
            got: dict[str, Any] = json.loads(raw)
            if got.get("type") == kind:
                return got

    def stop(self, timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        result = self.until("result", timeout)
        self.proc.wait(30)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Crowd(CrowdProcess):
    """The crowd in one Node process on core 1 (against ``base``, else the stack's first
    server)."""

    def __init__(
        self,
        stack: Stack,
        event: dict[str, Any],
        tokens_file: Path,
        mode: str,
        base: str | None = None,
    ):
        from loadtest.bench_ws import NodeSubscribers

        NodeSubscribers.ensure_installed()
        super().__init__(
            [
                *pin_prefix(1),
                "node",
                str(WSCLIENT / "queue_crowd.mjs"),
                "--base",
                base or stack.base,
                "--event",
                event["id"],
                "--category",
                event["categorias"][0]["id"],
                "--tokens",
                str(tokens_file),
                "--mode",
                mode,
            ]
        )


def _admission_ms(redis_url: str, event_id: str) -> list[int]:
    import redis as sync_redis

    from engine import keys

    client = sync_redis.Redis.from_url(redis_url)
    try:
        entries = client.xrange(keys.feed(event_id))
    finally:
        client.close()
    return sorted(
        int(raw_id.decode().split("-")[0])
        for raw_id, fields in entries
        if fields.get(b"event") == b"queue:admitted"
    )


def ws_part(args: argparse.Namespace) -> dict[str, Any]:
    import bisect

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(tmp, writer=False, ORDER_RESERVATION_TIMEOUT_MINUTES="10")
        try:
            t = time.perf_counter()
            tokens = register_many(stack.base, args.ws, "w")
            print(f"ws: {args.ws:,} buyers registered in {time.perf_counter() - t:.1f} s")
            tokens_file = tmp / "ws_tokens.txt"
            tokens_file.write_text("\n".join(tokens) + "\n")
            event = stack.event("Watched", 1)
            stack.queue(event["id"], 3600, preColaMinutos=120, entradasPorAdmision=1)
            crowd = Crowd(stack, event, tokens_file, "watch")
            joined = crowd.until("joined")
            ready = crowd.until("ready")
            print(f"ws: joined {joined}, sockets {ready}")
            stack.queue(event["id"], 1.5, preColaMinutos=120, entradasPorAdmision=1)
            cpu0 = _cpu(stack.server.pid)
            wall0 = time.perf_counter()
            with httpx.Client(base_url=stack.base, timeout=60) as http:
                for _ in range(args.ws_samples + 1):
                    admitted = crowd.until("admitted", 30)
                    h = {"Authorization": f"Bearer {tokens[admitted['i']]}"}
                    r = http.post(
                        "/api/orders",
                        json={
                            "eventoId": event["id"],
                            "tickets": [
                                {"categoriaId": event["categorias"][0]["id"], "cantidad": 1}
                            ],
                        },
                        headers={**h, "Admission-Token": admitted["token"]},
                    )
                    r.raise_for_status()
                    time.sleep(args.ws_gap)  # the positions of this admission go out
                    http.put(f"/api/orders/{r.json()['id']}/cancel", headers=h).raise_for_status()
            time.sleep(args.ws_gap)
            server_cpu = (_cpu(stack.server.pid) - cpu0) / (time.perf_counter() - wall0)
            result = crowd.stop()
            admissions = _admission_ms(stack.redis.url, event["id"])
            audit_rc, audit = stack.audit()
        finally:
            stack.stop()
    # Frames that moved a buyer (delante changed), grouped by the latest admission.
    last: dict[int, int] = {}
    per_sample: dict[int, list[int]] = {}
    for sock, ms, ahead in sorted(result.pop("frames"), key=lambda f: f[1]):
        if last.get(sock) == ahead:
            continue
        moved = sock in last
        last[sock] = ahead
        k = bisect.bisect_right(admissions, ms) - 1
        if not moved or k < 1:  # the first place, or the opening's own admission
            continue
        per_sample.setdefault(k, []).append(ms - admissions[k])
    samples = [sorted(v) for _, v in sorted(per_sample.items())]
    p50 = [percentile(v, 0.5) for v in samples]
    p99 = [percentile(v, 0.99) for v in samples]
    out = {
        "buyers": args.ws,
        "sockets_ready": ready["ready"],
        "socket_failures": ready["failed"],
        "samples": len(samples),
        "frames_per_sample": summary([len(v) for v in samples]) if samples else None,
        "position_p50_ms": summary(p50) if samples else None,
        "position_p99_ms": summary(p99) if samples else None,
        "position_max_ms": summary([v[-1] for v in samples]) if samples else None,
        "server_cpu": server_cpu,
        "closed_by_server": result.get("closedByServer"),
        "error_frames": result.get("errorFrames"),
        "audit_clean": audit_rc == 0,
        "audit": audit,
    }
    print(
        f"ws: {args.ws:,} queued buyers on sockets ({ready['ready']:,} ready), "
        f"{len(samples)} admissions sampled"
    )
    _table(out)
    print(f"ws: server CPU {server_cpu:.2f} cores over the samples; {audit}")
    return out


def _cpu(pid: int) -> float:
    from loadtest.bench_http import cpu_seconds

    return cpu_seconds(pid)


def _merged(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """One crowd line from several crowd processes' (the same ``type``): counts and lists
    added up, answer counts merged, the seconds and last times the latest, hold latency
    percentiles over every hold."""
    if len(lines) == 1:
        return lines[0]
    out: dict[str, Any] = dict(lines[0])
    for line in lines[1:]:
        for k, v in line.items():
            mine = out.get(k)
            known = [x for x in (mine, v) if x is not None]
            if k in ("s", "ms") or (k.startswith("last") and k.endswith("Ms")):
                out[k] = max(known) if known else None
            elif k == "firstAdmittedMs":
                out[k] = min(known) if known else None
            elif isinstance(v, bool) or k == "type":
                continue
            elif isinstance(v, int | float) and isinstance(mine, int | float):
                out[k] = mine + v
            elif isinstance(v, dict) and isinstance(mine, dict):
                out[k] = {c: mine.get(c, 0) + v.get(c, 0) for c in {*mine, *v}}
            elif isinstance(v, list) and isinstance(mine, list):
                out[k] = mine + v
    if "holdMs" in out:
        held: list[float] = sorted(out["holdMs"])
        out["hold_p50_ms"] = percentile(held, 0.5) if held else None
        out["hold_p99_ms"] = percentile(held, 0.99) if held else None
    return out


def onsale_part(args: argparse.Namespace) -> dict[str, Any]:
    from loadtest.queue_check import QueueSampler, problems_of

    n = args.servers or processes_for(args.crowd)
    if n > 1:
        print(
            f"onsale: {args.crowd:,} sockets do not fit one process (open files limit "
            f"{fd_limit():,}, hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}): "
            f"{n} onsale serve processes on core 0, one crowd process against each"
        )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(tmp, servers=n, ORDER_RESERVATION_TIMEOUT_MINUTES=str(args.hold_minutes))
        try:
            t = time.perf_counter()
            tokens = register_many(stack.base, args.crowd, "c")
            print(f"onsale: {args.crowd:,} buyers registered in {time.perf_counter() - t:.1f} s")
            files = [tmp / f"crowd_tokens_{part}.txt" for part in range(n)]
            for part, tokens_file in enumerate(files):
                tokens_file.write_text("\n".join(tokens[part::n]) + "\n")
            event = stack.event("On sale", args.stock)
            settings = {"preColaMinutos": 120, "entradasPorAdmision": 1, "latidoSegundos": 60}
            stack.queue(event["id"], 3600, **settings)
            sampler = QueueSampler(stack.redis.url).start()
            crowds = [
                Crowd(stack, event, f, "buy", base=stack.bases[part])
                for part, f in enumerate(files)
            ]
            joined = _merged([c.until("joined") for c in crowds])
            ready = _merged([c.until("ready") for c in crowds])
            print(f"onsale: joined {joined}, sockets {ready}")
            stack.queue(event["id"], 2, **settings)
            opened = time.time()
            until = time.monotonic() + args.onsale_timeout
            try:
                for c in crowds:
                    done = c.until("done", max(0.1, until - time.monotonic()))
            except TimeoutError:
                done = {"timeout": True}
            result = _merged([c.stop() for c in crowds])
            with httpx.Client(base_url=stack.base, timeout=60) as http:
                org = {"Authorization": f"Bearer {stack.org}"}
                sales = http.get(f"/api/admin/events/{event['id']}/sales", headers=org).json()
                deadline = time.monotonic() + float(args.hold_minutes) * 60 + 30
                while sales["retenidos"] and time.monotonic() < deadline:
                    time.sleep(0.5)
                    sales = http.get(f"/api/admin/events/{event['id']}/sales", headers=org).json()
            queues = sampler.stop()
            audit_rc, audit = stack.audit()
        finally:
            stack.stop()
    cola = sales.get("cola") or {}

    def ms(iso: str | None) -> float | None:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None

    opened_at, sold_out_at = ms(cola.get("abiertaEn")), ms(cola.get("agotadoEn"))
    refusals = sum(result["refusals"].values())
    out = {
        "crowd": args.crowd,
        "stock": args.stock,
        "server_processes": n,
        "open_files_limit": fd_limit(),
        "joined": joined["ok"],
        "join_failures": joined["failed"],
        "join_s": joined["s"],
        "sockets_ready": ready["ready"],
        "socket_failures": ready["failed"],
        "admitted": result["admitted"],
        "held": result["held"],
        "hold_refusals": refusals,
        "refusals_by_code": result["refusals"],
        "confirmed": result["confirmed"],
        "abandoned": result["abandoned"],
        "sold_out_told": result["soldOut"],
        "hold_p50_ms": result["hold_p50_ms"],
        "hold_p99_ms": result["hold_p99_ms"],
        "sold": sales.get("vendidos"),
        "opening_to_sold_out_s": (sold_out_at - opened_at) if opened_at and sold_out_at else None,
        "opening_to_last_confirm_s": (result["lastConfirmedMs"] / 1000 - opened_at)
        if opened_at and result.get("lastConfirmedMs")
        else None,
        "every_buyer_done": "timeout" not in done,
        "queue": cola,
        "queue_samples": [q.line() for q in queues],
        "problems": problems_of(queues),
        "audit_clean": audit_rc == 0,
        "audit": audit,
        "opened_wall": opened,
    }
    for k, v in out.items():
        if k not in ("queue", "opened_wall"):
            print(f"onsale: {k:<26}{v}")
    return out


async def main(args: argparse.Namespace) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    result: dict[str, Any] = {
        "machine": machine(),
        "command": "python -m loadtest.bench_queue " + " ".join(sys.argv[1:]),
    }
    print(f"machine: {result['machine']}")
    if "engine" in parts:
        result["engine"] = await engine_part(args)
    if "http" in parts:
        result["http"] = await asyncio.to_thread(http_part, args)
    if "ws" in parts:
        result["ws"] = await asyncio.to_thread(ws_part, args)
    if "onsale" in parts:
        result["onsale"] = await asyncio.to_thread(onsale_part, args)
    print(f"written to {write_result('queue', result)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="engine,http,ws,onsale")
    p.add_argument("--ops", type=int, default=20_000, help="engine: joins and holds")
    p.add_argument("--pre", type=int, default=100_000, help="engine: pre-queue to open")
    p.add_argument("--samples", type=int, default=50, help="engine: freed-ticket samples")
    p.add_argument("--rounds", type=int, default=3, help="http: J H rounds")
    p.add_argument("--seconds", type=float, default=5.0, help="http: seconds per run")
    p.add_argument("--connections", type=int, default=64, help="http: wrk connections")
    p.add_argument("--tokens", type=int, default=32_000, help="http: buyers (one JWT each)")
    p.add_argument("--workers", type=int, default=1, help="http: onsale serve --workers N")
    p.add_argument("--ws", type=int, default=1000, help="ws: queued buyers on sockets")
    p.add_argument("--ws-samples", type=int, default=6, help="ws: admissions sampled")
    p.add_argument("--ws-gap", type=float, default=1.3, help="ws: s between hold and cancel")
    p.add_argument("--crowd", type=int, default=5000, help="onsale: buyers")
    p.add_argument("--stock", type=int, default=500, help="onsale: tickets")
    p.add_argument("--confirm", type=float, default=0.8, help="onsale: share that confirms")
    p.add_argument("--hold-minutes", default="0.1", help="onsale: hold timeout (0.1 = 6 s)")
    p.add_argument("--onsale-timeout", type=float, default=300, help="onsale: bound, s")
    p.add_argument(
        "--servers",
        type=int,
        default=0,
        help="onsale: onsale serve processes (0: as many as the crowd's sockets need "
        "under the open files limit, one crowd process each)",
    )
    asyncio.run(main(p.parse_args()))
