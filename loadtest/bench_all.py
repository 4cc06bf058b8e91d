"""``make bench``: the whole benchmark suite, one bench per subprocess, one table at the end.

    python -m loadtest.bench_all [--full] [--only engine http ...]

Runs, each as its own process so none inherits another's pinning, event loop or memory:

    engine   engine holds/s vs the raw Redis ceiling of the same script (redis-benchmark)
    http     POST /api/orders vs a bare JSON POST of the same app (wrk), p50/p99
    flash    10,000 attempts for 1,000 tickets through HTTP: exactly 1,000 sold, audit clean
    sale     a flash sale in pretix's shape on make run's defaults: tickets/s, p99, audit
    expiry   10,000 holds expiring together: listener, sweeper-only, both
    ws       WebSocket fan-out latency from hold commit to subscriber
    writer   order writer throughput and backlog drain into the embedded store

The default is a quick pass (the whole suite in about five minutes on 2 cores: shorter
points than BENCHMARKING.md asks for); ``--full`` follows it (>= 5 s points, more rounds,
the WebSocket target's 5,000 subscribers at 500 updates/s). Every bench writes its JSON
under ``var/bench/``; this script adds ``summary.json`` and prints the table in Markdown.
Exit status: non-zero when a bench failed or a correctness check (exactness, audit) did
not hold; a missed performance target is shown in the table, not an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.common import RESULTS_DIR, machine


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    timeout_s: int


BENCHES = (
    Bench("engine", "loadtest.bench_engine", ("--seconds", "3", "--rounds", "3"),
          ("--seconds", "8", "--rounds", "5"), 600),
    Bench("http", "loadtest.bench_http", ("--seconds", "3", "--rounds", "3", "--refusals"),
          ("--seconds", "8", "--rounds", "5", "--refusals"), 900),
    Bench("flash", "loadtest.bench_flash", ("--rounds", "1"), ("--rounds", "3"), 900),
    Bench("sale", "loadtest.bench_sale", ("--tickets", "1000", "10000"),
          ("--tickets", "1000", "50000"), 900),
    Bench("expiry", "loadtest.bench_expiry", ("--rounds", "1"), ("--rounds", "3"), 900),
    Bench("ws", "loadtest.bench_ws", ("--subscribers", "1000", "--rate", "200", "--seconds", "5"),
          ("--subscribers", "5000", "--rate", "500", "--seconds", "15"), 900),
    Bench("writer", "loadtest.bench_writer", ("--orders", "10000"), ("--orders", "50000"), 900),
)  # fmt: skip


@dataclass
class Row:
    bench: str
    metric: str
    figure: str
    target: str = "—"
    ratio: str = "—"
    ok: bool | None = None

    def cells(self) -> list[str]:
        mark = {True: "yes", False: "**no**", None: "—"}[self.ok]
        return [self.bench, self.metric, self.figure, self.target, self.ratio, mark]


def spread(s: dict[str, float], fmt: str = ",.0f", unit: str = "") -> str:
    """'median (min-max)' of a summary dict."""
    return (
        f"{s['median']:{fmt}}{unit} ({s['min']:{fmt}}-{s['max']:{fmt}})"
        if s["min"] != s["max"]
        else f"{s['median']:{fmt}}{unit}"
    )


def run_bench(bench: Bench, full: bool, logs: Path) -> tuple[int, float]:
    args = list(bench.full if full else bench.quick)
    if bench.name == "writer":
        args += ["--out", str(RESULTS_DIR / "writer.json")]
    cmd = [sys.executable, "-m", bench.module, *args]
    log = logs / f"{bench.name}.log"
    print(f"\n== {bench.name}: {' '.join(cmd[1:])}  (output in {log})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
            assert proc.stderr is not None
            for line in proc.stderr:  # progress lines of the bench, as they come
                print(f"   {line.rstrip()}", file=sys.stderr, flush=True)
                out.write(line)
            rc = proc.wait(timeout=max(1, bench.timeout_s - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = 124
    return rc, time.monotonic() - started


def load(name: str, since: float) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def engine_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    pipelined = next(v for k, v in d.items() if k.startswith("raw_pipelined_"))
    ratio = d["ratio_vs_pipelined"]
    return [
        Row("engine", "engine holds/s (1 asyncio process)", spread(d["engine_per_s"])),
        Row("engine", "raw Redis ceiling, same script (redis-benchmark P16)", spread(pipelined)),
        Row("engine", "raw Redis, unpipelined (P1)", spread(d["raw_unpipelined_per_s"])),
        Row(
            "engine",
            "engine / raw ceiling (P16)",
            spread(ratio, ".2f"),
            ">= 0.50",
            f"{ratio['median'] / 0.5:.2f}x target",
            ratio["median"] >= 0.5,
        ),
        Row(
            "engine",
            "engine hold latency p50 / p99",
            f"{d['engine_p50_ms']['median']:.1f} / {d['engine_p99_ms']['median']:.1f} ms",
        ),
        Row("engine", "audit after the run", "clean" if d["audit_clean"] else "VIOLATIONS",
            "clean", ok=d["audit_clean"]),
    ]  # fmt: skip


def http_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    hold, ratio, p99 = d["hold_rps"], d["ratio_hold_vs_bare"], d["hold_p99_ms"]
    return [
        Row(
            "http",
            f"POST /api/orders holds/s (1 worker, wrk {d['connections']} conn)",
            spread(hold),
            ">= 8,000",
            f"{hold['median'] / 8000:.2f}x target",
            hold["median"] >= 8000,
        ),
        Row("http", "bare JSON POST /bench/echo, same app", spread(d["bare_rps"])),
        Row(
            "http",
            "holds / bare",
            spread(ratio, ".2f"),
            ">= 0.70",
            f"{ratio['median'] / 0.7:.2f}x target",
            ratio["median"] >= 0.7,
        ),
        Row(
            "http",
            "hold latency p50 / p99",
            f"{d['hold_p50_ms']['median']:.1f} / {p99['median']:.1f} ms",
            "p99 <= 25 ms",
            f"{p99['median'] / 25:.2f}x budget",
            p99["median"] <= 25,
        ),
        *http_cpu_rows(d),
        *http_reference_rows(d),
        Row("http", "non-2xx holds; audit", f"{d['hold_non_2xx']}; "
            + ("clean" if d["audit_clean"] else "VIOLATIONS"), "0; clean",
            ok=d["audit_clean"] and d["hold_non_2xx"] == 0),
    ]  # fmt: skip


def http_reference_rows(d: dict[str, Any]) -> list[Row]:
    """The bare ASGI and plain Litestar echoes of the same run, and sold-out refusals."""
    rows = []
    if "ratio_hold_vs_plain_litestar" in d:
        lit, asgi = d["ratio_hold_vs_plain_litestar"], d["ratio_hold_vs_asgi"]
        rows += [
            Row(
                "http",
                "bare ASGI echo (uvicorn + httptools + msgspec), same core",
                spread(d["asgi_rps"]),
            ),
            Row(
                "http",
                "plain Litestar echo (one POST route, msgspec body), same core",
                spread(d["plain_litestar_rps"]),
            ),
            Row(
                "http",
                "holds / plain Litestar",
                spread(lit, ".2f"),
                ">= 0.90",
                f"{lit['median'] / 0.9:.2f}x target",
                lit["median"] >= 0.9,
            ),
            Row(
                "http",
                "holds / bare ASGI",
                spread(asgi, ".2f"),
                ">= 0.35",
                f"{asgi['median'] / 0.35:.2f}x target",
                asgi["median"] >= 0.35,
            ),
        ]
    if "refusal_cpu_vs_hold" in d:
        cpu = d["refusal_cpu_vs_hold"]
        rows += [
            Row("http", "sold-out refusals/s (409, stock gate)", spread(d["refusal_rps"])),
            Row(
                "http",
                "server CPU per request: refusal / hold",
                spread(cpu, ".2f"),
                "<= 0.50",
                f"{cpu['median'] / 0.5:.2f}x budget",
                cpu["median"] <= 0.5,
            ),
        ]
    return rows


def http_cpu_rows(d: dict[str, Any]) -> list[Row]:
    """Server CPU per request: steady when the machine is shared, unlike requests/s."""
    if "hold_cpu_us_per_req" not in d:
        return []
    hold, bare = d["hold_cpu_us_per_req"], d["bare_cpu_us_per_req"]
    per_core = 1e6 / hold["median"]
    ratio = d["cpu_ratio_bare_vs_hold"]
    return [
        Row(
            "http",
            "server CPU per request: hold / bare",
            f"{hold['median']:,.0f} / {bare['median']:,.0f} us",
            ">= 0.70 (bare / hold)",
            f"{ratio['median']:.2f} bare / hold",
            ratio["median"] >= 0.7,
        ),
        Row(
            "http",
            "holds/s one fully used worker core would serve (1e6 / CPU per hold)",
            f"{per_core:,.0f}",
            ">= 8,000",
            f"{per_core / 8000:.2f}x target",
            per_core >= 8000,
        ),
    ]


def flash_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    rounds = d["rounds"]
    held = "/".join(f"{r['held_201']:,}" for r in rounds)
    sold = "/".join(f"{r['sold']:,}" for r in rounds)
    refused = "/".join(f"{r['refused_409']:,}" for r in rounds)
    ok = d["exact_every_round"] and d["audit_clean"]
    return [
        Row(
            "flash",
            f"{d['attempts']:,} attempts for {d['tickets']:,} tickets: held / sold / sold_out",
            f"{held} / {sold} / {refused}",
            f"exactly {d['tickets']:,} / {d['tickets']:,} / {d['attempts'] - d['tickets']:,}",
            "exact" if d["exact_every_round"] else "NOT EXACT",
            ok,
        ),
        Row("flash", "audit after the sale", "clean" if d["audit_clean"] else "VIOLATIONS",
            "clean", ok=d["audit_clean"]),
        Row(
            "flash",
            f"attempts/s, p50 / p99 ({d['connections']} conn, raw asyncio client)",
            f"{spread(d['attempts_per_s'])}, {d['p50_ms']['median']:.0f} / "
            f"{d['p99_ms']['median']:.0f} ms",
            "—",
            f"{d['ratio_vs_bare']['median']:.2f}x bare POST",
        ),
    ]  # fmt: skip


def sale_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    """One row per sale (1,000 tickets, then 10,000 or 50,000): the issue's targets."""
    rows = []
    workers = d.get("workers") or "default"
    for s in d["sales"]:
        rate, p99 = s["tickets_per_s"], s["sale_p99_ms"]
        rows.append(
            Row(
                "sale",
                f"{s['tickets']:,} tickets, {s['buyers']} buyers/connections ({workers} workers): "
                "tickets/s, p50 / p99",
                f"{rate:,.0f}/s, {s['sale_p50_ms']:.0f} / {p99:.0f} ms",
                ">= 4,550/s, p99 <= 50 ms",
                f"{rate / 4550:.2f}x rate, {p99 / 50:.2f}x p99 budget",
                rate >= 4550 and p99 <= 50,
            )
        )
        rows.append(
            Row(
                "sale",
                f"{s['tickets']:,} tickets: exact (held == tickets, 0 other answers); audit",
                ("exact" if s["exact"] else "NOT EXACT")
                + "; "
                + ("clean" if s["audit_clean"] else "VIOLATIONS"),
                "exact; clean",
                f"{s['sale_over_echo']:.2f}x /bench/echo",
                s["exact"] and s["audit_clean"],
            )
        )
    return rows


def expiry_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    interval_ms = d["sweep_interval_s"] * 1000
    rows = []
    labels = {
        "listener": "listener only",
        "sweeper": "sweeper only",
        "both": "listener + sweeper (as served)",
    }
    for path, label in labels.items():
        s = d.get(path)
        if not s:
            continue
        p99, mx = s["lag_p99_ms"]["median"], s["lag_max_ms"]["median"]
        budget = 1000.0 if path != "sweeper" else interval_ms
        worst = p99 if path == "listener" else mx
        rows.append(
            Row(
                "expiry",
                f"{d['holds']:,} holds, {label}: lag p50 / p99 / max",
                f"{s['lag_p50_ms']['median']:,.0f} / {p99:,.0f} / {mx:,.0f} ms",
                "p99 <= 1,000 ms" if path == "listener" else f"max <= {budget:,.0f} ms",
                f"{worst / budget:.2f}x budget",
                worst <= budget and s["missed"] == 0,
            )
        )
    notify = d.get("listener", {}).get("notify_p99_ms")
    if notify:
        rows.append(
            Row(
                "expiry",
                "Redis `expired` notification reaches a client: p50 / p99 after deadline",
                f"{d['listener']['notify_p50_ms']['median']:,.0f} / {notify['median']:,.0f} ms",
            )
        )
    spread_ms = d.get("listener", {}).get("deadline_spread_ms", {}).get("median", 0)
    rows.append(
        Row(
            "expiry",
            "deadline spread of the batch (creation burst); audit",
            f"{spread_ms:,.0f} ms; " + ("clean" if d["audit_clean"] else "VIOLATIONS"),
            "clean",
            ok=d["audit_clean"],
        )
    )
    return rows


def ws_rows(d: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    p99 = d["latency_p99_ms"]
    words = str(d.get("command", "")).split()
    asked = words[words.index("--rate") + 1] if "--rate" in words[:-1] else "?"
    return [
        Row(
            "ws",
            f"fan-out latency p50 / p99 / max, {d['subscribers']:,} subscribers, "
            f"{d['updates_per_s']:,.0f} updates/s reached (of {asked}/s asked)",
            f"{d['latency_p50_ms']:,.0f} / {p99:,.0f} / {d['latency_max_ms']:,.0f} ms",
            "p99 <= 200 ms (5,000 subs, 500/s)",
            f"{p99 / 200:.2f}x budget",
            p99 <= 200,
        ),
        Row(
            "ws",
            "frames delivered / sent x subscribers (rest conflated); server KB per subscriber",
            f"{d['delivered_fraction']:.2f}; {d['server_kb_per_subscriber']:,.1f} KB",
        ),
    ]


def writer_rows(d: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    rows = []
    http = results.get("http")
    hold_rate = http["hold_rps"]["median"] if http else None
    rows.append(
        Row(
            "writer",
            f"throughput into SQLite ({d['sqlite_synchronous']}), batch {d['batch']}",
            f"{d['entries_per_second']:,} entries/s ({d['orders_per_second']:,} orders/s)",
            ">= HTTP holds/s (keeps up)" if hold_rate else "—",
            f"{d['entries_per_second'] / hold_rate:.2f}x HTTP holds/s" if hold_rate else "—",
            d["entries_per_second"] >= hold_rate if hold_rate else None,
        )
    )
    rows.append(
        Row(
            "writer",
            f"lag: backlog of {d['log_entries']:,} entries ({d['orders']:,} orders) drained in",
            f"{d['drain_seconds']:.1f} s (batch upsert p50 {d['upsert_ms_p50']} ms, "
            f"store {d['store_share_of_drain']:.0%} of it)",
        )
    )
    return rows


ROWS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[Row]]] = {
    "engine": engine_rows,
    "http": http_rows,
    "flash": flash_rows,
    "sale": sale_rows,
    "expiry": expiry_rows,
    "ws": ws_rows,
    "writer": writer_rows,
}
CORRECTNESS = {"engine", "http", "flash", "sale", "expiry"}


def load_average() -> str:
    """The 1-minute load average: on a shared machine, how much else was running."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def markdown(rows: list[Row]) -> str:
    head = ["bench", "metric", "figure: median (min-max)", "target", "ratio", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="BENCHMARKING.md-length points")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    parser.add_argument(
        "--table-only", action="store_true", help="print the table of the last results, run nothing"
    )
    args = parser.parse_args()
    if args.table_only:
        found = {b.name: load(b.name, 0) for b in BENCHES}
        rows = [row for name, d in found.items() if d is not None for row in ROWS[name](d, found)]
        print(markdown(rows))
        return 0
    missing = [t for t in ("wrk", "redis-benchmark") if shutil.which(t) is None]
    if missing:
        print(
            f"missing {', '.join(missing)}: apt-get install -y wrk redis-tools (make bench does)",
            file=sys.stderr,
        )
        return 2
    if shutil.which("taskset") is None:
        print("no taskset: running unpinned (figures noisier)", file=sys.stderr)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    logs = RESULTS_DIR / "logs"
    logs.mkdir(exist_ok=True)
    started_at = dt.datetime.now(dt.UTC)
    load_before = load_average()
    suite_started = time.time()
    results: dict[str, Any] = {}
    runs: dict[str, dict[str, Any]] = {}
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        since = time.time()
        rc, seconds = run_bench(bench, args.full, logs)
        data = load(bench.name, since)
        runs[bench.name] = {"exit": rc, "seconds": round(seconds, 1)}
        if data is not None:
            results[bench.name] = data

    rows: list[Row] = []
    failed: list[str] = []
    for name, info in runs.items():
        data = results.get(name)
        if data is None or (info["exit"] != 0 and name not in CORRECTNESS):
            rows.append(Row(name, "bench failed", f"exit {info['exit']}, no result", ok=False))
            failed.append(name)
            continue
        rows += ROWS[name](data, results)
        if info["exit"] != 0:
            failed.append(name)
    correctness_broken = [
        r for r in rows if r.ok is False and (r.target.endswith("clean") or r.bench == "flash")
    ]

    info = machine()
    pinned = all(bool(d.get("pinned")) for d in results.values() if "pinned" in d)
    table = markdown(rows)
    header = (
        f"onsale benchmarks, {started_at:%Y-%m-%d %H:%M} UTC, "
        f"{'full' if args.full else 'quick'} mode, "
        f"{time.time() - suite_started:.0f} s; nproc {info['nproc']}, Python {info['python']}, "
        f"Redis {info['redis']}; server + Redis pinned to core 0, load generators to core 1: "
        f"{pinned}; load average (1 min) before / after: {load_before} / {load_average()}"
    )
    print(f"\n{header}\n\n{table}\n")
    summary = {
        "date": started_at.isoformat(),
        "mode": "full" if args.full else "quick",
        "machine": info,
        "pinned": pinned,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "runs": runs,
        "commands": {name: d.get("command") for name, d in results.items()},
        "rows": [r.__dict__ for r in rows],
        "markdown": table,
    }  # fmt: skip
    path = RESULTS_DIR / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"per-bench JSON and logs under {RESULTS_DIR}/; this table in {path}")
    if failed or correctness_broken:
        print(
            f"FAILED: benches {failed or '-'}; correctness rows "
            f"{[r.metric for r in correctness_broken] or '-'}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
