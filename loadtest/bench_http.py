"""HTTP holds/s (POST /api/orders with a JWT) against a bare JSON POST of the same app.

Side by side in one run (A B A B ...): wrk on core 1 drives one uvicorn worker pinned to
core 0, first the bare endpoint, then the hold endpoint. Redis runs on core 1 beside wrk:
it is its own service (its own machine in production), and on core 0 its ~55 us of script
CPU per hold would be charged to the worker. The worker's own CPU per request is measured
either way.

The order writer runs as its own process (``onsale writer``, on core 1), as
docs/scaling.md recommends for a deployment with more than one API process; with
``--writer inprocess`` it runs inside the worker as ``make run`` has it, and its cost is
charged to the hold endpoint. With ``--writer after`` it starts once the rounds are over
and stores the whole backlog: core 1 then carries wrk and Redis only, so the rate shows
what the worker serves when the load side is not the limit (the writer's CPU per hold
is measured in the default layout). Either way every order is persisted: the run ends by checking
that the store holds every order Redis does, and with the audit. Prints the
median ratio hold / bare, p50 and p99 of both endpoints (the bare p99 is what this
machine allows any request at that load), and ends with ``onsale audit``.
Core 1's share of a hold is printed too: its busy time per hold, and the Redis and
writer processes' CPU per hold (the rest is wrk): which core set the rate.

Two references run in the same rounds, each its own uvicorn worker pinned to the same core
0 with the same body (loadtest/ref_apps.py): a bare ASGI echo (uvicorn + httptools, msgspec
decode/encode) and a plain Litestar echo (one POST route with a msgspec body). The run
prints hold / plain Litestar and hold / bare ASGI.

``--refusals`` adds a fifth endpoint to every round: holds for a category that is sold out
(409 ``sold_out``), answered from the worker's in-process stock (api/services/stock_gate.py)
without a Redis round trip; it prints refusals/s against holds/s.

    python -m loadtest.bench_http [--seconds 5] [--rounds 3] [--connections 64] [--refusals]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.redis_server import RedisServer, free_port
from loadtest.common import (
    create_bulk_event,
    machine,
    pin_pid,
    pin_prefix,
    register,
    run_audit,
    server_env,
    summary,
    wait_ready,
    write_result,
)

SEED_ADMIN = ("admin@test.com", "Admin123!")  # onsale seed's demo ADMIN (api/seed.py)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
%s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.errors.status, latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to other load on the machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy_seconds(core: int) -> float:
    """Non-idle time of one CPU core so far (/proc/stat), to see whether the load side
    (wrk, Redis and the writer on core 1) kept up or was the limit."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            f = [int(x) for x in line.split()[1:]]
            idle = f[3] + f[4]
            return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return 0.0


def wrk(
    url: str,
    body: str,
    token: str | None,
    seconds: float,
    connections: int,
    tmp: Path,
    server_pid: int | None = None,
    others: dict[str, int] | None = None,
) -> dict[str, float]:
    script = tmp / "bench.lua"
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(WRK_SCRIPT % (body, auth))
    return run_wrk(script, url, seconds, connections, server_pid, others=others)


def run_wrk(
    script: Path,
    url: str,
    seconds: float,
    connections: int,
    server_pid: int | None = None,
    threads: int = 2,
    others: dict[str, int] | None = None,
) -> dict[str, float]:
    """One wrk run on core 1 with a Lua script that prints the RESULT line; the figures,
    with the server's CPU per request (``server_pid``), how busy core 1 was, and the CPU
    per request of each of ``others`` (name: pid; ``<name>_us_per_request``)."""
    others = others or {}
    cmd = [
        *pin_prefix(1),
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "-s",
        str(script),
        url,
    ]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    core1_before = core_busy_seconds(1)
    others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    cpu_used = (cpu_seconds(server_pid) - cpu_before) if server_pid else 0.0
    core1_used = core_busy_seconds(1) - core1_before
    others_used = {name: cpu_seconds(pid) - others_before[name] for name, pid in others.items()}
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not m:
        raise SystemExit(f"wrk failed:\n{out}")
    requests, errors, p50, p99, duration = (int(x) for x in m.groups())
    return {
        "requests": requests,
        "rps": requests / (duration / 1e6),
        "errors": errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "cpu_us_per_request": cpu_used * 1e6 / max(1, requests),
        "server_busy": cpu_used / (duration / 1e6),
        "core1_busy": core1_used / (duration / 1e6),
        "core1_us_per_request": core1_used * 1e6 / max(1, requests),
        **{
            f"{name}_us_per_request": used * 1e6 / max(1, requests)
            for name, used in others_used.items()
        },
    }


def stored_everything(
    base: str, env: dict[str, str], organizer: str, event_id: str
) -> tuple[int, int]:
    """(orders held in Redis, orders in the store) once the writer has caught up (60 s),
    through the API: the event's sales (live holds, one ticket per order here) and the
    admin order list (the store), as the seed's ADMIN; the list's 503 ``store_behind``
    (the writer more than 10,000 entries behind) means not yet."""
    import time

    import httpx

    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"], env=env, check=True, capture_output=True
    )
    login = httpx.post(
        f"{base}/api/auth/login", json={"email": SEED_ADMIN[0], "password": SEED_ADMIN[1]}
    )
    login.raise_for_status()
    admin = {"Authorization": f"Bearer {login.json()['token']}"}
    sales = httpx.get(
        f"{base}/api/admin/events/{event_id}/sales",
        headers={"Authorization": f"Bearer {organizer}"},
    )
    sales.raise_for_status()
    held = int(sales.json()["retenidos"])
    deadline = time.monotonic() + 60
    stored = 0
    while True:
        page = httpx.get(
            f"{base}/api/admin/orders", params={"eventoId": event_id, "limit": 1}, headers=admin
        )
        if page.status_code != 503:
            page.raise_for_status()
            stored = int(page.json()["pagination"]["total"])
        if stored >= held or time.monotonic() > deadline:
            return held, stored
        time.sleep(0.2)


def reference_server(factory: str, port: int) -> subprocess.Popen[bytes]:
    """One of loadtest/ref_apps.py's servers, served as ``onsale serve`` serves onsale."""
    return subprocess.Popen(
        [
            *pin_prefix(0),
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"loadtest.ref_apps:{factory}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_listening(port: int, attempts: int = 300) -> None:
    import socket
    import time

    for _ in range(attempts):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"reference server on port {port} did not start")


def sold_out_event(base: str, organizer: str, buyer: str) -> dict[str, str]:
    """An event with a one-ticket category, held once so that it is sold out."""
    import httpx

    event = create_bulk_event(base, organizer, "Sold out", total=1)
    body = {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
    }
    headers = {"Authorization": f"Bearer {buyer}"}
    first = httpx.post(f"{base}/api/orders", json=body, headers=headers, timeout=30)
    first.raise_for_status()
    refused = httpx.post(f"{base}/api/orders", json=body, headers=headers, timeout=30)
    assert refused.status_code == 409, refused.text
    return {"body": json.dumps(body)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--writer",
        choices=("apart", "inprocess", "after"),
        default="apart",
        help="the order writer as its own process on core 1 (default), inside the worker, "
        "or started once the rounds are over (core 1 then has wrk and Redis only)",
    )
    parser.add_argument(
        "--refusals",
        action="store_true",
        help="also measure holds refused for a sold-out category (409) in every round",
    )
    parser.add_argument(
        "--no-references",
        action="store_true",
        help="skip the bare ASGI and plain Litestar references",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk (make bench does)")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp / "redis", appendonly=False).start()
        assert redis.process is not None
        port = free_port()
        env = server_env(
            redis.url,
            tmp,
            port,
            BENCH_ENDPOINTS="true",
            MAX_TICKETS_PER_ORDER="10",
            RUN_WRITER="true" if args.writer == "inprocess" else "false",
        )
        server = subprocess.Popen(
            [*pin_prefix(0), sys.executable, "-m", "api.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def start_writer() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [*pin_prefix(1), sys.executable, "-m", "api.cli", "writer"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        writer = start_writer() if args.writer == "apart" else None
        pinned = pin_pid(redis.process.pid, 1)
        # What shares core 1 with wrk: the CPU of each per hold, to tell which core limits.
        core1_pids = {"redis": redis.process.pid}
        if writer is not None:
            core1_pids["writer"] = writer.pid
        base = f"http://127.0.0.1:{port}"
        references: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        if not args.no_references:
            for name, factory in (("asgi", "bare"), ("plain_litestar", "plain_litestar")):
                ref_port = free_port()
                proc = reference_server(factory, ref_port)
                references[name] = (proc, f"http://127.0.0.1:{ref_port}/bench/echo")
        try:
            wait_ready(base)
            for _proc, url in references.values():
                wait_listening(int(url.split(":")[2].split("/")[0]))
            org = register(base, "org@bench.test", role="ORGANIZADOR")
            buyer = register(base, "buyer@bench.test")
            event = create_bulk_event(base, org, "Bench")
            body = json.dumps(
                {
                    "eventoId": event["id"],
                    "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 1}],
                }
            )
            refusal_body = sold_out_event(base, org, buyer)["body"] if args.refusals else None
            for _proc, url in references.values():  # warm-up
                wrk(url, body, None, 2, args.connections, tmp)
            wrk(f"{base}/bench/echo", body, None, 2, args.connections, tmp)
            wrk(f"{base}/api/orders", body, buyer, 2, args.connections, tmp)
            if refusal_body is not None:
                wrk(f"{base}/api/orders", refusal_body, buyer, 2, args.connections, tmp)
            bare, hold = [], []
            refs: dict[str, list[dict[str, float]]] = {name: [] for name in references}
            refused: list[dict[str, float]] = []
            for r in range(args.rounds):
                for name, (proc, url) in references.items():
                    refs[name].append(
                        wrk(url, body, None, args.seconds, args.connections, tmp, proc.pid)
                    )
                bare.append(
                    wrk(
                        f"{base}/bench/echo",
                        body,
                        None,
                        args.seconds,
                        args.connections,
                        tmp,
                        server.pid,
                    )
                )
                hold.append(
                    wrk(
                        f"{base}/api/orders",
                        body,
                        buyer,
                        args.seconds,
                        args.connections,
                        tmp,
                        server.pid,
                        core1_pids,
                    )
                )
                if refusal_body is not None:
                    refused.append(
                        wrk(
                            f"{base}/api/orders",
                            refusal_body,
                            buyer,
                            args.seconds,
                            args.connections,
                            tmp,
                            server.pid,
                        )
                    )
                shown = ", ".join(f"{n} {v[-1]['rps']:,.0f}/s" for n, v in refs.items())
                extra = f", refusals {refused[-1]['rps']:,.0f}/s" if refused else ""
                print(
                    f"round {r + 1}: {shown + ', ' if shown else ''}"
                    f"bare {bare[-1]['rps']:,.0f}/s, hold {hold[-1]['rps']:,.0f}/s{extra}",
                    file=sys.stderr,
                )
            if args.writer == "after":  # now it stores the whole backlog
                writer = start_writer()
            audit_clean, audit_line = run_audit(env)
            persisted = stored_everything(base, env, org, event["id"])
        finally:
            server.terminate()
            server.wait(20)
            for proc, _ in references.values():
                proc.terminate()
                proc.wait(20)
            if writer is not None:
                writer.terminate()
                writer.wait(20)
            redis.stop()

    ratios = [h["rps"] / b["rps"] for h, b in zip(hold, bare, strict=True)]
    result = {
        "machine": machine(),
        "pinned": pinned,
        "command": "python -m loadtest.bench_http " + " ".join(sys.argv[1:]),
        "connections": args.connections,
        "bare_rps": summary([b["rps"] for b in bare]),
        "hold_rps": summary([h["rps"] for h in hold]),
        "ratio_hold_vs_bare": summary(ratios),
        "bare_cpu_us_per_req": summary([b["cpu_us_per_request"] for b in bare]),
        "hold_cpu_us_per_req": summary([h["cpu_us_per_request"] for h in hold]),
        "cpu_ratio_bare_vs_hold": summary(
            [
                b["cpu_us_per_request"] / max(1e-9, h["cpu_us_per_request"])
                for b, h in zip(bare, hold, strict=True)
            ]
        ),
        "bare_server_busy": summary([b["server_busy"] for b in bare]),
        "hold_server_busy": summary([h["server_busy"] for h in hold]),
        "bare_core1_busy": summary([b["core1_busy"] for b in bare]),
        "hold_core1_busy": summary([h["core1_busy"] for h in hold]),
        # Core 1 per hold: wrk, Redis and the writer (the rest is wrk and the machine).
        "hold_core1_us_per_req": summary([h["core1_us_per_request"] for h in hold]),
        **{
            f"hold_{name}_cpu_us_per_req": summary([h[f"{name}_us_per_request"] for h in hold])
            for name in core1_pids
        },
        "hold_p50_ms": summary([h["p50_ms"] for h in hold]),
        "hold_p99_ms": summary([h["p99_ms"] for h in hold]),
        "bare_p50_ms": summary([b["p50_ms"] for b in bare]),
        "bare_p99_ms": summary([b["p99_ms"] for b in bare]),
        "hold_non_2xx": sum(h["errors"] for h in hold),
        "audit": audit_line,
        "audit_clean": audit_clean,
        "writer": args.writer,
        "orders_in_redis_and_store": persisted,
    }
    for name, runs in refs.items():
        result[f"{name}_rps"] = summary([x["rps"] for x in runs])
        result[f"{name}_cpu_us_per_req"] = summary([x["cpu_us_per_request"] for x in runs])
        result[f"{name}_p99_ms"] = summary([x["p99_ms"] for x in runs])
        result[f"ratio_hold_vs_{name}"] = summary(
            [h["rps"] / x["rps"] for h, x in zip(hold, runs, strict=True)]
        )
    if refused:
        result["refusal_rps"] = summary([x["rps"] for x in refused])
        result["refusal_p50_ms"] = summary([x["p50_ms"] for x in refused])
        result["refusal_p99_ms"] = summary([x["p99_ms"] for x in refused])
        result["refusal_cpu_us_per_req"] = summary([x["cpu_us_per_request"] for x in refused])
        result["ratio_refusal_vs_hold"] = summary(
            [x["rps"] / h["rps"] for x, h in zip(refused, hold, strict=True)]
        )
        result["refusal_cpu_vs_hold"] = summary(
            [
                x["cpu_us_per_request"] / max(1e-9, h["cpu_us_per_request"])
                for x, h in zip(refused, hold, strict=True)
            ]
        )
        # Every refusal run must be refusals only (409): wrk counts them as non-2xx.
        result["refusal_non_409"] = sum(int(x["requests"] - x["errors"]) for x in refused)
    path = write_result("http", result)
    print(f"machine: {result['machine']}; server on core 0, wrk and redis on core 1: {pinned}")
    print(f"{'metric':<28}{'median':>12}{'min':>12}{'max':>12}")
    rows = [
        *(f"{n}_rps" for n in refs),
        "bare_rps",
        "hold_rps",
        *(f"ratio_hold_vs_{n}" for n in refs),
        "ratio_hold_vs_bare",
        "hold_p50_ms",
        "hold_p99_ms",
        "bare_p50_ms",
        "bare_p99_ms",
        "bare_cpu_us_per_req",
        "hold_cpu_us_per_req",
        "cpu_ratio_bare_vs_hold",
        "bare_server_busy",
        "hold_server_busy",
        "bare_core1_busy",
        "hold_core1_busy",
        *(f"{n}_cpu_us_per_req" for n in refs),
        *(f"{n}_p99_ms" for n in refs),
    ]
    if refused:
        rows += [
            "refusal_rps",
            "ratio_refusal_vs_hold",
            "refusal_p50_ms",
            "refusal_p99_ms",
            "refusal_cpu_us_per_req",
            "refusal_cpu_vs_hold",
        ]
    for name in rows:
        s = result[name]
        print(f"{name:<28}{s['median']:>12,.2f}{s['min']:>12,.2f}{s['max']:>12,.2f}")
    redis_n, stored_n = persisted
    print(f"non-2xx holds: {result['hold_non_2xx']}; {result['audit']}")
    print(f"writer {args.writer}: {stored_n:,} of {redis_n:,} orders in the store")
    if refused:
        print(f"refusal runs answered 2xx (must be 0): {result['refusal_non_409']}")
    print(
        "target: hold >= 0.9 x plain Litestar, >= 0.35 x bare ASGI, p99 <= 25 ms at 64 "
        "connections; a sold-out refusal costs <= 0.5 x a hold"
    )
    print(f"written to {path}")
    return 0 if result["audit_clean"] and redis_n == stored_n else 1


if __name__ == "__main__":
    raise SystemExit(main())
