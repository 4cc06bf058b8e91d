"""Login storm: hundreds of concurrent bcrypt logins (cost 12) while another client
measures ``/health/live``.

bcrypt runs in a bounded thread pool off the event loop (``BCRYPT_THREADS``, default 2),
so a storm of logins should queue in that pool and leave the loop free: liveness probes,
and every other cheap request, keep answering. The target (issue 7) is ``/health/live``
within 100 ms at p99 during the storm; this script measures and reports it, it asserts
nothing.

Standalone: starts its own redis-server and ``onsale serve`` (``BCRYPT_ROUNDS=12``, rate
limits off), creates the users straight in the embedded store (one cost-12 hash, shared:
every login still runs a full cost-12 ``checkpw``), then

1. a prober process sends ``GET /health/live`` every ``--probe-ms`` on one keep-alive
   connection, first ``--baseline`` seconds alone (the baseline), then during the storm;
2. ``--logins`` logins are fired with up to ``--concurrency`` in flight at once.

With ``--pin`` (default when there are two cores) the server and Redis run on core 0 and
both clients on core 1, so the server's event loop shares its core with its bcrypt threads,
as one worker per core does in production.

    .venv/bin/python -m loadtest.bench_login_storm [--logins 200] [--concurrency 200]

Prints a table and writes ``var/bench/login_storm.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "Storm1234"
HEALTH_TARGET_P99_MS = 100.0
PROBE_TIMEOUT_S = 10.0
MAX_PROBE_SAMPLES = 200_000


def make_users(data_dir: Path, count: int, rounds: int = 12, prefix: str = "storm") -> list[str]:
    """``count`` COMPRADOR users in the embedded store, sharing one bcrypt hash."""
    import bcrypt

    from engine.models import new_id
    from persistence.sqlite import SQLiteStore
    from persistence.store import SQLITE_FILENAME, User

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds)).decode()
    store = SQLiteStore(data_dir / SQLITE_FILENAME)
    emails = []
    try:
        now = int(time.time() * 1000)
        for i in range(count):
            email = f"{prefix}{i}-{new_id()[:6]}@bench.test"
            store.create_user(
                User(
                    id=new_id(),
                    name=f"Storm {i}",
                    email=email,
                    role="COMPRADOR",
                    password_hash=hashed,
                    created_at=now,
                )
            )
            emails.append(email)
    finally:
        store.close()
    return emails


def probe(url: str, stop: Any, out: Any, interval_s: float, max_s: float) -> None:
    """Prober process: (wall start, latency ms, status) per /health/live call."""
    samples: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + max_s
    with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT_S) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            if len(samples) >= MAX_PROBE_SAMPLES:
                break
            started_wall = time.time()
            started = time.perf_counter()
            try:
                status = client.get("/health/live").status_code
            except httpx.HTTPError:
                status = 0
            took = time.perf_counter() - started
            samples.append((started_wall, took * 1000, status))
            time.sleep(max(0.0, interval_s - took))
    out.put(samples)


async def login_storm(
    url: str, emails: list[str], logins: int, concurrency: int, timeout_s: float = 300.0
) -> list[tuple[int, float]]:
    """(status, latency ms) of ``logins`` logins with up to ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout_s) as client:

        async def one(i: int) -> tuple[int, float]:
            async with gate:
                started = time.perf_counter()
                try:
                    r = await client.post(
                        "/api/auth/login",
                        json={"email": emails[i % len(emails)], "password": PASSWORD},
                    )
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                return status, (time.perf_counter() - started) * 1000

        return list(await asyncio.gather(*(one(i) for i in range(logins))))


def run_storm(
    url: str,
    emails: list[str],
    *,
    logins: int,
    concurrency: int,
    baseline_s: float = 3.0,
    probe_ms: float = 10.0,
    max_s: float = 600.0,
    probe_core: int | None = None,
) -> dict[str, Any]:
    """Baseline probes, then the storm with probes; raw samples and the storm window."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    out = ctx.Queue()
    prober = ctx.Process(target=probe, args=(url, stop, out, probe_ms / 1000, max_s), daemon=True)
    prober.start()
    if probe_core is not None and prober.pid is not None:
        from loadtest.common import pin_pid

        pin_pid(prober.pid, probe_core)
    try:
        time.sleep(baseline_s)
        storm_start = time.time()
        results = asyncio.run(login_storm(url, emails, logins, concurrency))
        storm_end = time.time()
        time.sleep(0.5)
    finally:
        stop.set()
    samples: list[tuple[float, float, int]] = out.get(timeout=60)
    prober.join(30)
    return {
        "samples": samples,
        "logins": results,
        "storm_start": storm_start,
        "storm_end": storm_end,
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    from loadtest.common import percentile

    start, end = raw["storm_start"], raw["storm_end"]
    baseline = [s for s in raw["samples"] if s[0] < start]
    during = [s for s in raw["samples"] if start <= s[0] <= end]

    def figures(samples: list[tuple[float, float, int]]) -> dict[str, Any]:
        lat = sorted(s[1] for s in samples)
        return {
            "probes": len(samples),
            "non_200": sum(1 for s in samples if s[2] != 200),
            "p50_ms": percentile(lat, 0.50),
            "p95_ms": percentile(lat, 0.95),
            "p99_ms": percentile(lat, 0.99),
            "max_ms": lat[-1] if lat else float("nan"),
        }

    login_lat = sorted(lat for _, lat in raw["logins"])
    statuses: dict[str, int] = {}
    for status, _ in raw["logins"]:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    seconds = end - start
    storm = figures(during)
    return {
        "health_baseline": figures(baseline),
        "health_storm": storm,
        "health_target_p99_ms": HEALTH_TARGET_P99_MS,
        "health_target_met": storm["p99_ms"] <= HEALTH_TARGET_P99_MS and storm["non_200"] == 0,
        "logins": len(raw["logins"]),
        "login_statuses": statuses,
        "storm_seconds": seconds,
        "logins_per_s": len(raw["logins"]) / seconds if seconds > 0 else float("nan"),
        "login_p50_ms": percentile(login_lat, 0.50),
        "login_p99_ms": percentile(login_lat, 0.99),
    }


def main() -> int:
    from engine.redis_server import RedisServer, free_port
    from loadtest.common import machine, pin_pid, pin_prefix, server_env, write_result

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=12, help="bcrypt cost of the users")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--baseline", type=float, default=3.0, help="seconds of probes alone")
    parser.add_argument("--probe-ms", type=float, default=10.0)
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        assert redis.process is not None
        emails = make_users(tmp, args.users, args.rounds)
        port = free_port()
        env = server_env(redis.url, tmp, port, BCRYPT_ROUNDS=str(args.rounds))
        pin = pin_prefix(0) if args.pin else []
        server = subprocess.Popen(
            [*pin, sys.executable, "-m", "api.cli", "serve", "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pinned = bool(pin) and pin_pid(redis.process.pid, 0)
        if args.pin:
            pin_pid(os.getpid(), 1)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("onsale serve did not become ready")
            raw = run_storm(
                base,
                emails,
                logins=args.logins,
                concurrency=args.concurrency,
                baseline_s=args.baseline,
                probe_ms=args.probe_ms,
                probe_core=1 if args.pin else None,
            )
        finally:
            server.terminate()
            server.wait(30)
            redis.stop()

    result = {
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_login_storm " + " ".join(sys.argv[1:]),
        "bcrypt_rounds": args.rounds,
        "workers": args.workers,
        "concurrency": args.concurrency,
        **summarize(raw),
    }
    path = write_result("login_storm", result)
    base_h, storm_h = result["health_baseline"], result["health_storm"]
    print(f"machine: {result['machine']}; server+redis on core 0, clients on core 1: {pinned}")
    print(
        f"{result['logins']} logins (bcrypt cost {args.rounds}, {args.concurrency} in flight, "
        f"{args.workers} worker(s)) in {result['storm_seconds']:.1f}s = "
        f"{result['logins_per_s']:.1f}/s; statuses {result['login_statuses']}; "
        f"login p50 {result['login_p50_ms']:.0f} ms, p99 {result['login_p99_ms']:.0f} ms"
    )
    print(f"{'/health/live':<14}{'probes':>8}{'non-200':>9}{'p50 ms':>9}{'p95 ms':>9}", end="")
    print(f"{'p99 ms':>9}{'max ms':>9}")
    for name, h in (("baseline", base_h), ("storm", storm_h)):
        print(
            f"{name:<14}{h['probes']:>8}{h['non_200']:>9}{h['p50_ms']:>9.1f}{h['p95_ms']:>9.1f}"
            f"{h['p99_ms']:>9.1f}{h['max_ms']:>9.1f}"
        )
    verdict = "met" if result["health_target_met"] else "NOT met"
    print(f"target: /health/live p99 <= {HEALTH_TARGET_P99_MS:.0f} ms during the storm: {verdict}")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
