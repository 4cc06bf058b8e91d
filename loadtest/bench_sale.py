"""A flash sale in pretix's shape, on ``make run``'s defaults: tickets sold per second.

200 buyers, each with their own token, each over their own keep-alive connection (wrk,
200 connections), send one-ticket holds for one category as fast as answers come back,
until it is sold out: first 1,000 tickets, then 50,000 (``--tickets``). The server is
``onsale serve`` as ``make run`` starts it: the embedded redis-server child process, the
embedded store, the writer and the sweeper inside, the default worker count (the
machine's cores, or ``--workers``), nothing pinned. Two settings differ from ``make
run``, both off the hold path: ``RATE_LIMIT_PER_MINUTE=0`` (200 buyers buying 50,000
tickets is 250 holds each, past the default 120 a minute) and ``BCRYPT_ROUNDS=4`` (the
200 sign-ups).

Figures of one sale:

* **tickets/s sold**: tickets / (last hold's ``creadoEn`` - first hold's), read from the
  event's CSV export (the store's copy of every order);
* **p50 / p99**: wrk's latency of every answered request of the sale. Each wrk thread
  stops at its first ``409 sold_out``, so refusals after the sell-out are not counted;
* the same run's reference: the app's bare ``/bench/echo`` (``BENCH_ENDPOINTS``) over the
  same 200 connections, and the sale's rate over it;
* exactness: sold + held + available == total with held == tickets, and ``onsale audit``.

    python -m loadtest.bench_sale [--tickets 1000 50000] [--buyers 200] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from engine.redis_server import free_port
from loadtest.bench_flash import register_buyers
from loadtest.common import create_bulk_event, machine, register, run_audit, write_result

SALE_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  local per = math.floor(#tokens / tonumber(args[2]))
  reqs = {}
  for i = (id - 1) * per + 1, id * per do
    reqs[#reqs + 1] = wrk.format("POST", "/api/orders", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. tokens[i],
    }, args[3])
  end
  n, s201, s409, other = 0, 0, 0, 0
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  if status == 201 then s201 = s201 + 1
  elseif status == 409 then s409 = s409 + 1; wrk.thread:stop()
  else other = other + 1 end
end

done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("s201"); b = b + t:get("s409"); c = c + t:get("other")
  end
  io.write(string.format("RESULT %d %d %d %d %d %d %d\n", summary.requests, a, b, c,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
ECHO_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def serve(tmp: Path, port: int, workers: int | None) -> subprocess.Popen[bytes]:
    """``onsale serve`` with make run's defaults (see the module docstring)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "MONGODB_URI", "ONSALE_EMBEDDED_REDIS_URL", "APP_ENV")
    }
    env.update(
        DATA_DIR=str(tmp),
        PORT=str(port),
        RATE_LIMIT_PER_MINUTE="0",
        BCRYPT_ROUNDS="4",
        BENCH_ENDPOINTS="true",
        LOG_LEVEL="warning",
    )
    extra = ["--workers", str(workers)] if workers else []
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wrk_cmd(script: Path, base: str, connections: int, seconds: int, *args: str) -> list[str]:
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script)]
    cmd.append(base)
    if args:
        cmd += ["--", *args]
    return cmd


def echo_reference(base: str, tmp: Path, body: str, connections: int) -> dict[str, float]:
    script = tmp / "echo.lua"
    script.write_text(ECHO_SCRIPT % body)
    out = subprocess.run(
        wrk_cmd(script, f"{base}/bench/echo", connections, 3),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+)", out)
    if not m:
        raise SystemExit(f"wrk (echo) failed:\n{out}")
    requests, duration, p50, p99 = (int(x) for x in m.groups())
    return {"rps": requests / (duration / 1e6), "p50_ms": p50 / 1000, "p99_ms": p99 / 1000}


def available(client: httpx.Client, event_id: str) -> int:
    r = client.get(f"/api/events/{event_id}")
    r.raise_for_status()
    return int(r.json()["categorias"][0]["disponible"])


def aof_rewrites(tmp: Path) -> int:
    """Background AOF rewrites the embedded redis-server has started so far (its log)."""
    return sum(
        log.read_text(errors="replace").count("Background append only file rewriting started")
        for log in (tmp / "redis").glob("redis-*.log")
    )


def run_sale(
    base: str,
    tmp: Path,
    tokens_file: Path,
    event_id: str,
    body: str,
    connections: int,
    tickets: int,
) -> dict[str, Any]:
    """wrk until sold out; each thread stops at its first sold_out. wrk prints its
    summary on SIGINT, sent once the event reads 0 available."""
    script = tmp / "sale.lua"
    script.write_text(SALE_SCRIPT)
    bound = int(tickets / 500) + 30
    started = time.monotonic()
    proc = subprocess.Popen(
        wrk_cmd(script, base, connections, bound, str(tokens_file), "2", body),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sold_out_at = None
    rewrites = aof_rewrites(tmp)
    # One keep-alive connection, ten looks a second: the watcher's own cost stays small
    # beside the sale's (a new client per look cost ~15 % of a core).
    with httpx.Client(base_url=base, timeout=10) as client:
        while proc.poll() is None and time.monotonic() - started < bound:
            if available(client, event_id) == 0:
                sold_out_at = time.monotonic() - started
                break
            time.sleep(0.1)
    time.sleep(0.5)  # the last answers, and every thread's first refusal
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not m or "sale.lua" in err:
        raise SystemExit(f"wrk (sale) failed:\n{out}\n{err}")
    requests, s201, s409, other, p50, p99, worst = (int(x) for x in m.groups())
    return {
        "requests": requests,
        "answered_201": s201,
        "answered_409": s409,
        "answered_other": other,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "max_ms": worst / 1000,
        "sold_out_seen_after_s": sold_out_at,
        "aof_rewrites": aof_rewrites(tmp) - rewrites,
    }


def sale_window(base: str, org: str, event_id: str) -> tuple[int, float, float]:
    """(orders in the export, seconds from the first hold to the last, seconds the export
    waited): the export reads what the writer has not stored yet too, and answers 503
    ``store_behind`` while the writer is more than 10,000 orders behind."""
    started = time.monotonic()
    while True:
        r = httpx.get(
            f"{base}/api/admin/events/{event_id}/orders.csv",
            headers={"Authorization": f"Bearer {org}"},
            timeout=120,
        )
        if r.status_code != 503 or time.monotonic() - started > 300:
            break
        time.sleep(float(r.headers.get("retry-after", "1")))
    waited = time.monotonic() - started
    r.raise_for_status()
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    stamps = sorted(dt.datetime.fromisoformat(row["creadoEn"]).timestamp() for row in rows)
    return len(rows), (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0, waited


def sales(base: str, org: str, event_id: str) -> dict[str, int]:
    r = httpx.get(
        f"{base}/api/admin/events/{event_id}/sales",
        headers={"Authorization": f"Bearer {org}"},
        timeout=30,
    )
    r.raise_for_status()
    cat = r.json()["categorias"][0]
    return {k: int(cat[k]) for k in ("vendidos", "retenidos", "disponibles")}


def audit(tmp: Path) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "APP_ENV")}
    env["DATA_DIR"] = str(tmp)
    return run_audit(env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, nargs="+", default=[1_000, 50_000])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--workers", type=int, default=None, help="default: onsale's own")
    args = parser.parse_args()
    if args.buyers % 2 or not 2 <= args.buyers <= 5000:
        parser.error("--buyers: an even number, 2-5000 (one wrk connection each)")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = serve(tmp, port, args.workers)
        results: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("onsale serve did not become ready")
                time.sleep(0.1)
            tag = uuid.uuid4().hex[:6]
            org = register(base, f"org-{tag}@sale.test", role="ORGANIZADOR")
            tokens = asyncio.run(register_buyers(port, args.buyers, tag, connections=16))
            tokens_file = tmp / "tokens.txt"
            tokens_file.write_text("\n".join(tokens) + "\n")
            for tickets in args.tickets:
                event = create_bulk_event(base, org, f"Sale {tag}", total=tickets)
                body = (
                    f'{{"eventoId":"{event["id"]}","tickets":[{{"categoriaId":'
                    f'"{event["categorias"][0]["id"]}","cantidad":1}}]}}'
                )
                echo = echo_reference(base, tmp, body, args.buyers)
                sale = run_sale(base, tmp, tokens_file, event["id"], body, args.buyers, tickets)
                exported, window, waited = sale_window(base, org, event["id"])
                figures = sales(base, org, event["id"])
                clean, audit_line = audit(tmp)
                rate = (tickets - 1) / window if window else float("nan")
                row = {
                    "tickets": tickets,
                    "buyers": args.buyers,
                    "tickets_per_s": rate,
                    "sale_seconds": window,
                    "echo_rps": echo["rps"],
                    "sale_over_echo": rate / echo["rps"] if echo["rps"] else 0.0,
                    **{f"sale_{k}": v for k, v in sale.items()},
                    "echo_p99_ms": echo["p99_ms"],
                    "exported_orders": exported,
                    "export_waited_s": waited,
                    **figures,
                    "exact": figures["retenidos"] == tickets
                    and figures["disponibles"] == 0
                    and figures["vendidos"] == 0
                    and exported == tickets
                    and sale["answered_other"] == 0,
                    "audit_clean": clean,
                    "audit": audit_line,
                }
                results.append(row)
                print(
                    f"{tickets:>6} tickets: {rate:,.0f} tickets/s over {window:.2f} s, "
                    f"p50 {sale['p50_ms']:.1f} ms, p99 {sale['p99_ms']:.1f} ms "
                    f"(echo {echo['rps']:,.0f}/s, sale/echo {row['sale_over_echo']:.2f}; "
                    f"{sale['aof_rewrites']} AOF rewrites); "
                    f"exact={row['exact']} audit={'clean' if clean else audit_line}",
                    flush=True,
                )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    payload = {"machine": machine(), "workers": args.workers, "sales": results}
    path = write_result("sale", payload)
    print(f"wrote {path}")
    ok = all(r["exact"] and r["audit_clean"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
