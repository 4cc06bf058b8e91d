"""Flash-sale exactness: 10,000 hold attempts for 1,000 tickets through HTTP.

One uvicorn worker (``onsale serve``) and its redis-server on core 0; this process, the load
generator, on core 1. Buyers are registered up front (``BCRYPT_ROUNDS=4``); then a raw
asyncio HTTP/1.1 client (keep-alive, requests pre-encoded: it measures the server, not
itself) sends every attempt for one ticket, each with its own ``Idempotency-Key``, over
``--connections`` connections. Exactly ``--tickets`` must be held (201) and every other
attempt refused as ``sold_out`` (409); then every hold is confirmed, and the sales figures
must read sold == tickets, held == 0, available == 0, with ``onsale audit`` clean.

The generator's own ceiling is measured in the same run: the same number of POSTs of the
same body to the app's bare ``/bench/echo`` endpoint (``BENCH_ENDPOINTS``).

    python -m loadtest.bench_flash [--attempts 10000] [--tickets 1000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from engine.redis_server import RedisServer, free_port
from loadtest.common import (
    machine,
    percentile,
    pin_pid,
    pin_prefix,
    run_audit,
    server_env,
    summary,
    write_result,
)


class RawHttp:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests (no parsing beyond
    the status line, Content-Length and chunked bodies)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                await self._open()
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def encode(
    port: int, method: str, path: str, body: Any, token: str | None, key: str | None
) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if key:
        lines.append(f"Idempotency-Key: {key}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Blast:
    statuses: Counter[int] = field(default_factory=Counter)
    each: list[int] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process (the generator) while it ran

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0


async def blast(port: int, requests: list[bytes], connections: int, bound_s: float) -> Blast:
    """Send every request once over ``connections`` keep-alive connections (bounded)."""
    out = Blast()
    out.bodies = [b""] * len(requests)
    statuses = [0] * len(requests)
    next_index = iter(range(len(requests)))
    deadline = time.perf_counter() + bound_s

    async def worker() -> None:
        conn = RawHttp(port)
        try:
            for i in next_index:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    statuses[i], out.bodies[i] = await conn.send(requests[i])
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    statuses[i] = 0
                out.latencies_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            await conn.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(connections)))
    out.seconds = time.perf_counter() - started
    out.cpu_seconds = time.process_time() - cpu
    out.each = statuses
    out.statuses = Counter(statuses)
    for status, body in zip(statuses, out.bodies, strict=True):
        if status >= 400 and body:
            try:
                out.codes[json.loads(body).get("code", "?")] += 1
            except ValueError:
                out.codes["?"] += 1
    out.latencies_ms.sort()
    return out


async def register_buyers(port: int, count: int, tag: str, connections: int) -> list[str]:
    requests = [
        encode(
            port,
            "POST",
            "/api/auth/register",
            {"nombre": f"b{i}", "email": f"b{i}-{tag}@flash.test", "password": "Secret123"},
            None,
            None,
        )
        for i in range(count)
    ]
    result = await blast(port, requests, connections, bound_s=300)
    if result.statuses.get(201, 0) != count:
        raise SystemExit(f"registering buyers failed: {dict(result.statuses)}")
    return [json.loads(b)["token"] for b in result.bodies]


async def create_event(base: str, org: str, tickets: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(
            "/api/events",
            headers={"Authorization": f"Bearer {org}"},
            json={
                "nombre": f"Flash {uuid.uuid4().hex[:6]}",
                "fecha": "2030-01-01T00:00:00Z",
                "ubicacion": "Lab",
                "capacidadTotal": tickets,
                "precioBase": 10,
                "categorias": [{"nombre": "Flash", "precio": 10, "cantidadTotal": tickets}],
            },
        )
    r.raise_for_status()
    event: dict[str, Any] = r.json()
    return event


async def one_round(
    base: str, port: int, tokens: list[str], org: str, admin: str, args: argparse.Namespace
) -> dict[str, Any]:
    event = await create_event(base, org, args.tickets)
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    holds = [
        encode(port, "POST", "/api/orders", body, tokens[i % len(tokens)], uuid.uuid4().hex)
        for i in range(args.attempts)
    ]
    echoes = [encode(port, "POST", "/bench/echo", body, None, None) for _ in range(args.attempts)]
    bare = await blast(port, echoes, args.connections, bound_s=120)
    rush = await blast(port, holds, args.connections, bound_s=300)

    held = [(i, json.loads(rush.bodies[i])["id"]) for i, st in enumerate(rush.each) if st == 201]
    confirms = [
        encode(
            port,
            "PUT",
            f"/api/orders/{order_id}/confirm",
            {"metodoPago": "tarjeta", "transactionId": f"tx-{order_id}"},
            tokens[i % len(tokens)],  # the buyer who holds it
            None,
        )
        for i, order_id in held
    ]
    confirmed = await blast(port, confirms, args.connections, bound_s=120)
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.get(
            f"/api/admin/events/{event['id']}/sales",
            headers={"Authorization": f"Bearer {admin}"},
        )
        sales = r.json()
    cat = sales["categorias"][0]
    exact = (
        rush.statuses.get(201, 0) == args.tickets
        and rush.statuses.get(409, 0) == args.attempts - args.tickets
        and rush.codes.get("sold_out", 0) == args.attempts - args.tickets
        and confirmed.statuses.get(200, 0) == args.tickets
        and cat["vendidos"] == args.tickets
        and cat["retenidos"] == 0
        and cat["disponibles"] == 0
    )
    return {
        "event": event["id"],
        "attempts": args.attempts,
        "tickets": args.tickets,
        "held_201": rush.statuses.get(201, 0),
        "refused_409": rush.statuses.get(409, 0),
        "refusal_codes": dict(rush.codes),
        "other_statuses": {str(k): v for k, v in rush.statuses.items() if k not in (201, 409)},
        "confirmed_200": confirmed.statuses.get(200, 0),
        "sold": cat["vendidos"],
        "held_after": cat["retenidos"],
        "available_after": cat["disponibles"],
        "exact": exact,
        "attempts_per_s": rush.rate,
        "bare_per_s": bare.rate,
        "generator_cpu_share_bare": bare.cpu_seconds / bare.seconds if bare.seconds else 0.0,
        "generator_cpu_share_rush": rush.cpu_seconds / rush.seconds if rush.seconds else 0.0,
        "ratio_vs_bare": rush.rate / bare.rate if bare.rate else 0.0,
        "p50_ms": percentile(rush.latencies_ms, 0.5),
        "p99_ms": percentile(rush.latencies_ms, 0.99),
        "rush_seconds": rush.seconds,
    }


def run(coro: Any) -> Any:
    """uvloop when installed (uvicorn[standard] brings it): a cheaper generator."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--tickets", type=int, default=1_000)
    parser.add_argument("--buyers", type=int, default=1_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if not 0 < args.tickets <= args.attempts <= 200_000:
        parser.error("need 0 < tickets <= attempts <= 200000")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        assert redis.process is not None
        port = free_port()
        env = server_env(redis.url, tmp, port, BENCH_ENDPOINTS="true")
        server = subprocess.Popen(
            [*pin_prefix(0), sys.executable, "-m", "api.cli", "serve", "--seed"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pinned = pin_pid(redis.process.pid, 0) and pin_pid(os.getpid(), 1)
        base = f"http://127.0.0.1:{port}"
        rounds: list[dict[str, Any]] = []
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            org = httpx.post(
                f"{base}/api/auth/register",
                json={
                    "nombre": "Org",
                    "email": "org@flash.test",
                    "password": "Secret123",
                    "role": "ORGANIZADOR",
                },
            ).json()["token"]
            admin = httpx.post(
                f"{base}/api/auth/login",
                json={"email": "admin@test.com", "password": "Admin123!"},
            ).json()["token"]
            t0 = time.perf_counter()
            tokens = run(register_buyers(port, args.buyers, uuid.uuid4().hex[:6], args.connections))
            register_s = time.perf_counter() - t0
            for r in range(args.rounds):
                rounds.append(run(one_round(base, port, tokens, org, admin, args)))
                x = rounds[-1]
                print(
                    f"round {r + 1}: {x['held_201']} held / {x['attempts']} attempts, "
                    f"{x['sold']} sold, exact {x['exact']}, {x['attempts_per_s']:,.0f} att/s "
                    f"(bare {x['bare_per_s']:,.0f}/s; generator cpu "
                    f"{x['generator_cpu_share_bare']:.0%} / {x['generator_cpu_share_rush']:.0%})",
                    file=sys.stderr,
                )
            audit_clean, audit_line = run_audit(env)
        finally:
            server.terminate()
            server.wait(20)
            redis.stop()

    exact = all(x["exact"] for x in rounds)
    result = {
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_flash " + " ".join(sys.argv[1:]),
        "attempts": args.attempts,
        "tickets": args.tickets,
        "buyers": args.buyers,
        "connections": args.connections,
        "register_seconds": register_s,
        "rounds": rounds,
        "exact_every_round": exact,
        "held_201": summary([x["held_201"] for x in rounds]),
        "sold": summary([x["sold"] for x in rounds]),
        "attempts_per_s": summary([x["attempts_per_s"] for x in rounds]),
        "bare_per_s": summary([x["bare_per_s"] for x in rounds]),
        "ratio_vs_bare": summary([x["ratio_vs_bare"] for x in rounds]),
        "p50_ms": summary([x["p50_ms"] for x in rounds]),
        "p99_ms": summary([x["p99_ms"] for x in rounds]),
        "audit": audit_line,
        "audit_clean": audit_clean,
    }
    path = write_result("flash", result)
    print(f"machine: {result['machine']}; server+redis on core 0, generator on core 1: {pinned}")
    for x in rounds:
        print(
            f"attempts {x['attempts']:,}  held {x['held_201']:,}  sold_out {x['refused_409']:,}  "
            f"other {x['other_statuses']}  confirmed {x['confirmed_200']:,}  sales: sold "
            f"{x['sold']:,} held {x['held_after']} available {x['available_after']}  "
            f"exact: {x['exact']}"
        )
    print(f"{'metric':<18}{'median':>12}{'min':>12}{'max':>12}")
    for name in ("attempts_per_s", "bare_per_s", "ratio_vs_bare", "p50_ms", "p99_ms"):
        s = result[name]
        print(f"{name:<18}{s['median']:>12,.2f}{s['min']:>12,.2f}{s['max']:>12,.2f}")
    print(f"{result['audit']}")
    print(f"target: exactly {args.tickets:,} held and sold, audit clean; written to {path}")
    return 0 if exact and result["audit_clean"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
