"""``make loadtest``: a headless locust run against a server this script starts, then checks.

1. starts ``onsale serve --seed`` on embedded defaults (its own ``DATA_DIR`` under
   ``var/loadtest/``, embedded redis-server, embedded store) with ``RATE_LIMIT_PER_MINUTE=0``,
   ``BCRYPT_ROUNDS=4`` (test mode) and a short ``ORDER_RESERVATION_TIMEOUT_MINUTES`` so
   abandoned holds expire during the run; server and Redis pinned to core 0;
2. seeds buyers, organizers and two rush events through the API and writes their tokens to
   ``var/loadtest/seed.json`` (the locustfile reads it: no bcrypt in the hot loop);
3. runs locust headless on core 1 with bounded users and duration, against 127.0.0.1 only,
   writing its CSV files and HTML report under ``var/loadtest/``;
4. waits for every hold to expire and the writer to catch up, runs ``onsale audit`` with the
   server's environment, and checks every event's sales figures: per category
   sold + held + available == total, nothing held, and the tickets buyers were told they
   bought equal the tickets sold;
5. with an admission queue in the run (``LOCUST_TAGS=queue``: a crowd 10x the stock,
   ``QUEUE_STOCK`` default users/10), samples every queue every 0.1 s during the run
   (loadtest/queue_check.py, one atomic read per queue) and fails if sold + held + the
   admitted buyers not yet holding ever exceeded the stock; prints each queue's figures.

Exits non-zero on any locust failure, audit violation, sales mismatch or admission past
the stock.

While locust runs, one progress line every few seconds (users, requests/s, failures, from
locust's ``locust_stats_history.csv``); at the end the summary table and the HTML report's
path. ``LOCUST_SHAPE=flash`` replaces linear spawning by the flash crowd of an opening
(loadtest/shapes.py: every user within seconds, then decay).

    LOCUST_USERS=200 LOCUST_DURATION=60 [LOCUST_TAGS="rush watchers"] [LOCUST_SHAPE=flash] \
        make loadtest
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from engine.redis_server import free_port
from loadtest.common import machine, pin_prefix
from loadtest.queue_check import QueueSampler, problems_of
from loadtest.shapes import shape_named
from loadtest.users import seed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "loadtest"
ADMIN = {"email": "admin@test.com", "password": "Admin123!"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--users", type=int, default=env_int("LOCUST_USERS", 200))
    p.add_argument("--duration", type=int, default=env_int("LOCUST_DURATION", 60), help="s")
    p.add_argument("--spawn-rate", type=float, default=0.0, help="users/s (default users/5)")
    p.add_argument("--tags", default=os.environ.get("LOCUST_TAGS", ""), help="e.g. 'rush browse'")
    p.add_argument(
        "--shape",
        default=os.environ.get("LOCUST_SHAPE", ""),
        help="load shape by name (loadtest/shapes.py: flash); default linear spawning",
    )
    p.add_argument(
        "--progress-every", type=float, default=5.0, help="seconds between progress lines"
    )
    p.add_argument("--workers", type=int, default=env_int("LOADTEST_WORKERS", 1))
    p.add_argument(
        "--hold-minutes",
        default=os.environ.get("LOADTEST_HOLD_MINUTES", "0.1"),
        help="ORDER_RESERVATION_TIMEOUT_MINUTES of the server (0.1 = 6 s)",
    )
    p.add_argument(
        "--tickets",
        type=int,
        default=env_int("LOADTEST_TICKETS", 0),
        help="tickets per rush event (default: sized to sell out during the run)",
    )
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    shape_named(args.shape)  # an unknown name stops here, in one line
    if not 1 <= args.users <= 5000 or not 5 <= args.duration <= 3600:
        p.error("users must be 1..5000 and duration 5..3600 s")
    return args


class Server:
    """``onsale serve --seed`` on embedded defaults, pinned to core 0, logging to a file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.redis_port = free_port()
        self.data_dir = args.out / "data"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "ONSALE_EMBEDDED_REDIS_URL"},
            "APP_ENV": "test",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(self.data_dir),
            "REDIS_URL": "",  # embedded redis-server, even if .env names another
            "MONGODB_URI": "",  # embedded store
            "EMBEDDED_REDIS_PORT": str(self.redis_port),
            "RATE_LIMIT_PER_MINUTE": "0",
            "EVENTS_PER_HOUR": "0",
            "WS_MAX_PER_USER": "0",
            "WS_MAX_PER_ADDRESS": "0",
            "BCRYPT_ROUNDS": "4",
            "ORDER_RESERVATION_TIMEOUT_MINUTES": str(args.hold_minutes),
            "JWT_SECRET": secrets.token_urlsafe(40),
            "LOG_LEVEL": "warning",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = args.out / "server.log"
        self.workers = args.workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *pin_prefix(0),
                    sys.executable,
                    "-m",
                    "api.cli",
                    "serve",
                    "--seed",
                    "--workers",
                    str(self.workers),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited at start:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("server not ready within 90 s")

    def audit(self) -> tuple[int, str]:
        """``onsale audit`` with the server's environment, on the server's embedded Redis."""
        env = {**self.env, "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        out = subprocess.run(
            [sys.executable, "-m", "api.cli", "audit"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return out.returncode, (out.stdout + out.stderr).strip()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def tickets_per_event(args: argparse.Namespace) -> int:
    if args.tickets:
        return args.tickets
    # About what ~60 % of the users (the rush share) buy in 2/3 of the run at ~1.2 tickets/s
    # each, over two events: the small categories sell out early, the whole event late.
    return max(200, int(args.users * 0.6 * args.duration * (2 / 3) * 1.2 / 2))


def run_locust(args: argparse.Namespace, host: str, seed_file: Path) -> int:
    spawn = args.spawn_rate or max(1.0, args.users / 5)
    cmd = [
        *pin_prefix(1),
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtest" / "locustfile.py"),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(spawn),
        "--run-time",
        f"{args.duration}s",
        "--host",
        host,
        "--csv",
        str(args.out / "locust"),
        "--html",
        str(args.out / "report.html"),
        "--stop-timeout",
        "5",
        "--loglevel",
        "WARNING",
    ]
    if args.tags.strip():
        cmd += ["--tags", *args.tags.split()]
    env = {
        **os.environ,
        "LOADTEST_SEED": str(seed_file),
        "LOADTEST_OUTCOMES": str(args.out / "outcomes.json"),
        "LOCUST_SHAPE": args.shape,
        "QUEUE_STOCK": os.environ.get("QUEUE_STOCK") or str(max(1, args.users // 10)),
    }
    log_path = args.out / "locust.log"
    print("$ " + " ".join(cmd) + f"  > {log_path}", flush=True)
    if args.shape:
        print(f"loadtest: load shape {args.shape!r} (peak {args.users} users)", flush=True)
    history = args.out / "locust_stats_history.csv"
    history.unlink(missing_ok=True)
    deadline = time.monotonic() + args.duration + 180
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() > deadline:
                print("locust did not stop in time", file=sys.stderr)
                proc.kill()
                proc.wait()
                return 99
            time.sleep(args.progress_every)
            if line := progress_line(history, time.monotonic() - started):
                print(line, flush=True)
        rc = proc.returncode
    if rc not in (0, 1):  # 1: failures, in the table below; else locust itself broke
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
    return rc


def progress_line(history: Path, elapsed: float) -> str | None:
    """The last Aggregated row of locust's stats history as one line."""
    try:
        with history.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except OSError:
        return None
    if not rows:
        return None
    last = rows[-1]
    return (
        f"  [{elapsed:5.0f}s] users {last.get('User Count', '?'):>5}  "
        f"req/s {float(last.get('Requests/s') or 0):8.1f}  "
        f"requests {last.get('Total Request Count', '?'):>8}  "
        f"failures {last.get('Total Failure Count', '?'):>5} "
        f"({float(last.get('Failures/s') or 0):.1f}/s)  "
        f"p50 {last.get('Total Median Response Time', '?')} ms"
    )


def login_admin(client: httpx.Client) -> dict[str, str]:
    r = client.post("/api/auth/login", json=ADMIN)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def wait_quiet(client: httpx.Client, admin: dict[str, str], bound_s: float) -> dict[str, Any]:
    """Until no hold is live and the writer has persisted everything (bounded)."""
    deadline = time.monotonic() + bound_s
    stats: dict[str, Any] = {}
    lag: Any = None
    while time.monotonic() < deadline:
        stats = client.get("/api/admin/stats", headers=admin).json()
        lag = client.get("/health/ready").json().get("checks", {}).get("writerLag")
        unacked = lag.get("pending", 0) + lag.get("undelivered", 0) if isinstance(lag, dict) else 0
        if stats["reservasActivas"] == 0 and stats["ticketsRetenidos"] == 0 and unacked == 0:
            break
        time.sleep(0.5)
    return {"stats": stats, "writerLag": lag}


def all_event_ids(client: httpx.Client) -> list[str]:
    ids: list[str] = []
    for page in range(1, 1000):
        body = client.get(f"/api/events?page={page}&limit=100").json()
        ids += [e["id"] for e in body["data"]]
        if page >= body["pagination"]["totalPages"]:
            break
    return ids


def check_sales(
    client: httpx.Client, admin: dict[str, str], ledger: dict[str, Any]
) -> tuple[list[str], dict[str, int]]:
    """Per category sold + held + available == total and nothing held; the buyers' count of
    confirmed tickets against the server's sold counter."""
    problems: list[str] = []
    confirmed = ledger.get("confirmedTickets", {})
    ambiguous = ledger.get("outcomes", {}).get("confirm_unknown", 0)
    totals = {"events": 0, "total": 0, "sold": 0, "held": 0, "available": 0, "told_sold": 0}
    for event_id in all_event_ids(client):
        sales = client.get(f"/api/admin/events/{event_id}/sales", headers=admin).json()
        totals["events"] += 1
        for c in sales["categorias"]:
            where = f"event {event_id} category {c['categoriaId']}"
            sold, held, avail, total = c["vendidos"], c["retenidos"], c["disponibles"], c["total"]
            totals["total"] += total
            totals["sold"] += sold
            totals["held"] += held
            totals["available"] += avail
            if min(sold, held, avail) < 0:
                problems.append(f"{where}: negative figure {c}")
            if sold + held + avail != total:
                problems.append(
                    f"{where}: sold {sold} + held {held} + available {avail} != total {total}"
                )
            if held:
                problems.append(f"{where}: {held} tickets still held after every deadline")
            told = confirmed.get(event_id, {}).get(c["categoriaId"], 0)
            totals["told_sold"] += told
            if told > sold:
                problems.append(f"{where}: buyers were sold {told} tickets, server counts {sold}")
            elif told < sold and not ambiguous:
                problems.append(f"{where}: server sold {sold}, buyers were told of only {told}")
    return problems, totals


def locust_summary(out: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    def rows(name: str) -> list[dict[str, str]]:
        path = out / name
        if not path.is_file():
            return []
        with path.open() as f:
            return list(csv.DictReader(f))

    return rows("locust_stats.csv"), rows("locust_failures.csv")


def print_summary(stats: list[dict[str, str]], failures: list[dict[str, str]]) -> None:
    print(f"\n{'type':<5}{'name':<52}{'reqs':>8}{'fails':>7}{'p50':>7}{'p99':>7}{'rps':>8}")
    for row in stats:
        print(
            f"{row['Type'][:5]:<5}{row['Name'][:51]:<52}{row['Request Count']:>8}"
            f"{row['Failure Count']:>7}{row['50%']:>7}{row['99%']:>7}"
            f"{float(row['Requests/s']):>8.1f}"
        )
    for f in failures:
        print(f"FAILURE x{f['Occurrences']}: {f['Method']} {f['Name']}: {f['Error'][:160]}")


def main() -> int:
    args = parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("locust_*.csv"):
        stale.unlink()
    server = Server(args)
    result: dict[str, Any] = {
        "machine": machine(),
        "users": args.users,
        "duration_s": args.duration,
        "tags": args.tags or "all",
        "shape": args.shape or "linear",
        "workers": args.workers,
        "hold_minutes": args.hold_minutes,
        "pinned": bool(pin_prefix(0)),
    }
    print(f"loadtest: starting the server ({server.url}, data in {server.data_dir})", flush=True)
    server.start()
    try:
        started = time.monotonic()
        tickets = tickets_per_event(args)
        data = seed(server.url, buyers=args.users, organizers=3, tickets_per_event=tickets)
        seed_file = args.out / "seed.json"
        seed_file.write_text(data.to_json())
        print(
            f"loadtest: seeded {len(data.buyers)} buyers, {len(data.organizers)} organizers, "
            f"2 rush events x {tickets} tickets in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        result["tickets_per_rush_event"] = tickets
        sampler = QueueSampler(f"redis://127.0.0.1:{server.redis_port}/0").start()
        result["locust_exit"] = run_locust(args, server.url, seed_file)

        ledger_path = args.out / "outcomes.json"
        ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            admin = login_admin(client)
            hold_s = float(args.hold_minutes) * 60
            quiet = wait_quiet(client, admin, bound_s=hold_s + 45)
            queues = sampler.stop()
            audit_rc, audit_out = server.audit()
            problems, totals = check_sales(client, admin, ledger)
        problems += problems_of(queues)
        if "queue" in args.tags.split() and not queues:
            problems.append("the queue scenario ran but no queue was sampled")
        stats_confirmed = quiet["stats"].get("ordenesPorEstado", {}).get("CONFIRMED", 0)
        told_confirmed = ledger.get("outcomes", {}).get("confirmed", 0)
        if stats_confirmed < told_confirmed:
            problems.append(
                f"store holds {stats_confirmed} CONFIRMED orders, buyers confirmed {told_confirmed}"
            )
    finally:
        server.stop()

    stats, failures = locust_summary(args.out)
    print_summary(stats, failures)
    print(f"\nbuyer outcomes: {json.dumps(ledger.get('outcomes', {}), sort_keys=True)}")
    print(f"after the run: {json.dumps(quiet['stats'])}")
    print(
        f"sales: {totals['events']} events, total {totals['total']} = sold {totals['sold']} "
        f"+ held {totals['held']} + available {totals['available']}; "
        f"buyers were told of {totals['told_sold']} sold"
    )
    for q in queues:
        print(q.line())
    print(audit_out)
    print(f"HTML report: {args.out / 'report.html'}")
    for p in problems:
        print(f"PROBLEM: {p}")
    aggregated = next((r for r in stats if r["Name"] == "Aggregated"), {})
    result.update(
        {
            "audit_exit": audit_rc,
            "audit": audit_out,
            "sales": totals,
            "problems": problems,
            "outcomes": ledger.get("outcomes", {}),
            "after_run": quiet,
            "queues": [{**vars(q), "bound": q.bound} for q in queues],
            "requests": int(aggregated.get("Request Count", 0) or 0),
            "failures": int(aggregated.get("Failure Count", 0) or 0),
            "rps": float(aggregated.get("Requests/s", 0) or 0),
            "report": str(args.out / "report.html"),
        }
    )
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    ok = audit_rc == 0 and not problems and result["locust_exit"] == 0
    verdict = "PASS" if ok else "FAIL"
    print(
        f"\nloadtest {verdict}: locust exit {result['locust_exit']} "
        f"({result['failures']} failures of {result['requests']} requests), "
        f"audit exit {audit_rc}, {len(problems)} sales problems; "
        f"report {args.out / 'report.html'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
