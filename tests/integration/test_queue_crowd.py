"""Exactness of the admission queue (SPEC 10.1) with thousands of queued buyers across two
server processes: issue 18.

Two ``onsale serve`` processes share one real redis-server and one store (as two
instances behind a load balancer). ``CROWD`` buyers (accounts written straight into the
store, their JWTs signed with the servers' secret: no bcrypt, no sign-up requests) are
driven by one Node process, loadtest/wsclient/queue_crowd.mjs, half of them (HTTP and
socket) on each server: each joins the pre-queue, tries to hold without an
Admission-Token and with a made-up one, then waits on its WebSocket (``join:queue``, the
heartbeat). The queue opens a few seconds later; an admitted buyer holds one ticket with
its token, ``CONFIRM`` of them confirm, the others abandon and their holds expire after
``HOLD_MINUTES``, so admission resumes for the next in line until ``STOCK`` is sold.

While it runs, a sampler reads the queue and the stock atomically in Redis (one Lua call
per sample, loadtest/queue_check.py): sold + held + admitted-not-holding never exceeds the
stock (``entradasPorAdmision`` = 1, docs/queue.md "Admission rule"). At the end: every
ticket sold and sold + available + held == total, ``onsale audit`` clean, every order's
buyer admitted (its place USADO with that order), nobody admitted twice, every buyer never
admitted told ``queue:sold-out`` and reading AGOTADO, and the admissions in the revealed
seed's HMAC order (``onsale queue verify`` and the admission times in Redis).

Needs node (skipped without it; ``npm ci`` in loadtest/wsclient when ``ws`` is missing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis
from litestar.security.jwt import Token

from engine import keys
from engine.models import new_id
from engine.redis_server import RedisServer
from engine.vocabulary import OrderStatus
from loadtest.bench_queue import CrowdProcess
from loadtest.queue_check import QueueSampler
from persistence.sqlite import SQLiteStore
from persistence.store import SQLITE_FILENAME, User
from tests.integration.conftest import (
    REPO,
    TEST_SECRET,
    ApiServer,
    bearer,
    create_event,
    node_with,
    start_api,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CROWD = 5000  # queued buyers, half on each server
STOCK = 500  # tickets (one category), one per buyer
CONFIRM = 0.8  # share of the admitted buyers who confirm; the others abandon their hold
HOLD_MINUTES = "0.05"  # 3 s: abandoned holds expire and the next in line is admitted
OPENS_IN_S = 2.0  # the opening, once every buyer is in the pre-queue and on its socket
DONE_TIMEOUT_S = 120.0  # from the opening until every buyer is done
WSCLIENT = REPO / "loadtest" / "wsclient"


@pytest.fixture(scope="module")
def node() -> str:
    return node_with(WSCLIENT, "ws", "the queued crowd (queue_crowd.mjs)")


@dataclass
class Stack:
    redis: RedisServer
    a: ApiServer
    b: ApiServer
    data_dir: Path


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two API processes on one redis-server and one store (one ``DATA_DIR``)."""
    tmp = tmp_path_factory.mktemp("crowd")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = CROWD + 1000  # the Node crowd holds every socket; each server half of them
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"{CROWD} sockets need {need} file descriptors, the hard limit is {hard}")
    redis_server = RedisServer(data_dir=tmp / "redis", appendonly=False).start()
    env = {
        "DATA_DIR": str(tmp / "shared"),
        "ORDER_RESERVATION_TIMEOUT_MINUTES": HOLD_MINUTES,
        "WS_MAX_PER_ADDRESS": "0",  # the whole crowd comes from 127.0.0.1
        "RUN_WEBHOOKS": "false",
    }
    for name in ("a", "b"):
        (tmp / name).mkdir()
    servers: list[ApiServer] = []
    # The children inherit the raised limit; the test process gets its own back after.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(start_api, tmp / n, redis_server, 1, **env) for n in ("a", "b")]
            for f in futures:
                servers.append(f.result())
        yield Stack(redis_server, servers[0], servers[1], tmp / "shared")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for server in servers:
            server.stop()
        redis_server.stop()


def _accounts(data_dir: Path, n: int, role: str) -> list[tuple[str, str]]:
    """``n`` users written straight into the store, each with a token signed as the server
    signs them (a bcrypt sign-up per buyer would take longer than the on-sale)."""
    store = SQLiteStore(data_dir / SQLITE_FILENAME)
    out = []
    now = datetime.now(UTC)
    try:
        for i in range(n):
            user_id = new_id()
            store.create_user(
                User(
                    id=user_id,
                    name=f"{role.lower()} {i}",
                    email=f"{role.lower()}{i}-{user_id[:8]}@crowd.test",
                    role=role,
                    password_hash="!",  # nobody logs in: tokens only
                    created_at=int(now.timestamp() * 1000),
                )
            )
            token = Token(sub=user_id, exp=now + timedelta(hours=1), extras={"role": role})
            out.append((user_id, token.encode(TEST_SECRET, "HS256")))
    finally:
        store.close()
    return out


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Crowd(CrowdProcess):
    """queue_crowd.mjs with its stderr in ``log``, shown when it exits early."""

    def __init__(self, node: str, args: list[str], log: Path) -> None:
        self.log = log
        super().__init__([node, str(WSCLIENT / "queue_crowd.mjs"), *args], stderr=log.open("w"))

    def exited(self) -> BaseException:
        return AssertionError(f"the crowd exited: {self.log.read_text()[-2000:]}")


def _hmac_order(seed: str, users: list[str]) -> list[str]:
    key = bytes.fromhex(seed)
    return sorted(users, key=lambda u: hmac.new(key, u.encode(), hashlib.sha256).digest())


def _cli(api: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO,
        env=api.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_thousands_queued_across_two_processes(node: str, stack: Stack) -> None:
    started = time.monotonic()
    a, b = stack.a, stack.b
    ((_, org),) = _accounts(stack.data_dir, 1, "ORGANIZADOR")
    buyers = _accounts(stack.data_dir, CROWD, "COMPRADOR")
    users = [u for u, _ in buyers]
    index = {u: i for i, u in enumerate(users)}
    tokens_file = stack.data_dir / "crowd_tokens.txt"
    tokens_file.write_text("".join(t + "\n" for _, t in buyers))
    accounts_s = time.monotonic() - started

    event = create_event(a, org, [("A", 10.0, STOCK)], nombre="Crowd")
    eid, cat = event["id"], event["categorias"][0]["id"]
    settings = {"preColaMinutos": 120, "entradasPorAdmision": 1, "latidoSegundos": 60}
    r = httpx.put(
        f"{a.url}/api/events/{eid}/queue",
        json={"abreEn": _at(3600), **settings},
        headers=bearer(org),
        timeout=30,
    )
    assert r.status_code == 200, r.text

    sampler = QueueSampler(stack.redis.url).start()
    crowd = Crowd(
        node,
        [
            *("--base", a.url, "--base2", b.url, "--event", eid, "--category", cat),
            *("--tokens", str(tokens_file), "--mode", "buy", "--confirm", str(CONFIRM)),
            *("--probe", "1", "--http", "32"),
        ],
        stack.data_dir / "crowd.log",
    )
    try:
        joined = crowd.until("joined", 120)
        ready = crowd.until("ready", 120)
        joined_s = time.monotonic() - started
        # Every buyer is in the pre-queue and on its socket: the opening a few seconds
        # ahead (asked of the other server).
        r = httpx.put(
            f"{b.url}/api/events/{eid}/queue",
            json={"abreEn": _at(OPENS_IN_S), **settings},
            headers=bearer(org),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        try:
            crowd.until("done", OPENS_IN_S + DONE_TIMEOUT_S)
            timed_out = False
        except TimeoutError:
            timed_out = True
        result = crowd.stop(60)
    finally:
        crowd.kill()
        figures = sampler.stop()
    wall_s = time.monotonic() - started

    client = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        qk = keys.queue_keys(eid)
        qhash = cast(dict[str, str], client.hgetall(qk.queue))
        inventory = cast(dict[str, str], client.hgetall(keys.inventory(eid)))
        orders = [json.loads(v) for v in client.hvals(keys.orders(eid))]
        # The admissions in the order the admit script made them (the event's feed).
        feed = cast(list[tuple[str, dict[str, str]]], client.xrange(keys.feed(eid)))
        admitted_in_order = [f["user"] for _, f in feed if f.get("event") == "queue:admitted"]
    finally:
        client.close()
    public = httpx.get(f"{a.url}/api/events/{eid}/queue").json()
    sales = httpx.get(f"{b.url}/api/events/{eid}").json()["categorias"][0]
    places = {f[2:]: json.loads(v) for f, v in qhash.items() if f.startswith("u:")}
    token_users = [v for f, v in qhash.items() if f.startswith("t:")]
    total, available = int(inventory[f"t:{cat}"]), int(inventory[f"a:{cat}"])
    held = int(inventory[f"h:{cat}"])
    # Sold and held counted from the orders themselves, not from the counters.
    tickets = Counter[str]()
    for o in orders:
        tickets[o["estado"]] += sum(t["cantidad"] for t in o["tickets"])
    sold, held_orders = tickets[OrderStatus.CONFIRMED], tickets[OrderStatus.RESERVED]
    admitted = set(token_users)
    never = set(users) - admitted
    summary = {
        "crowd": CROWD,
        "stock": STOCK,
        "accounts_s": round(accounts_s, 1),
        "joined_and_on_sockets_s": round(joined_s, 1),
        "join_s": joined["s"],
        "sockets_s": ready["s"],
        "wall_s": round(wall_s, 1),
        "opening_to_sold_out_s": (int(qhash.get("so", 0)) - int(qhash.get("oa", 0))) / 1000,
        "admitted": int(qhash.get("adm", 0)),
        "converted": int(qhash.get("conv", 0)),
        "admissions_expired": int(qhash.get("exp", 0)),
        "lost": int(qhash.get("lost", 0)),
        "held_by_crowd": result["held"],
        "confirmed": result["confirmed"],
        "abandoned": result["abandoned"],
        "refusals": result["refusals"],
        "told_sold_out": result["soldOut"],
        "dup_admitted_frames": result["dupAdmittedFrames"],
        "hold_p50_ms": result["hold_p50_ms"],
        "hold_p99_ms": result["hold_p99_ms"],
        "per_server": [{k: v for k, v in b.items() if k != "base"} for b in result["perBase"]],
        "sampler": [f.line() for f in figures],
        "feed_entries": len(feed),
        "sold": sold,
        "available": available,
        "held": held,
    }
    print("queue crowd:", json.dumps(summary))

    # Every check below adds to ``problems``, so a failure names all that went wrong.
    problems: list[str] = []

    def check(ok: object, problem: str) -> None:
        if not ok:
            problems.append(problem)

    # The crowd got in: every join, every socket, half of them on each server.
    half = [CROWD // 2, CROWD - CROWD // 2]
    check(joined["ok"] == CROWD and joined["failed"] == 0, f"joins: {joined}")
    check(ready["ready"] == CROWD and ready["failed"] == 0, f"sockets: {ready}")
    check([p["joinOk"] for p in result["perBase"]] == half, f"per server: {result['perBase']}")
    check([p["ready"] for p in result["perBase"]] == half, f"per server: {result['perBase']}")
    check(
        result["errorFrames"] == 0 and result["closedByServer"] == 0,
        f"error frames {result['errorFrames']}, closed by server {result['closedByServer']}",
    )

    # Nobody holds without a token: every hold tried without one, or with a made-up one.
    check(
        result["probes"] == {"403 admission_required": CROWD, "403 admission_invalid": CROWD},
        f"holds without a (valid) admission token answered {result['probes']}",
    )

    # Never admitted past the stock, at any sample: sold + held + admitted-not-holding.
    for f in figures:
        check(f.violations == 0 and f.max_claims <= STOCK, f"admitted past the stock: {f.line()}")
        check(f.samples >= 20 and f.max_claims >= STOCK, f"the sampler saw no rush: {f.line()}")
    check(len(figures) == 1, f"sampled {len(figures)} queues")

    # Everything sold, the counters agree with the orders, the audit is clean.
    check(
        not timed_out,
        f"not every buyer was done {DONE_TIMEOUT_S:.0f} s after the opening: queue "
        f"{qhash.get('st')}, sold {sold}, held {held}, available {available}, admitted "
        f"{summary['admitted']}, expired {summary['admissions_expired']}, lost "
        f"{summary['lost']}, refusals {result['refusals']}, told sold out {result['soldOut']}",
    )
    check(
        sold + available + held == total == STOCK and held == held_orders,
        f"sold {sold} + available {available} + held {held} (orders: {held_orders}) "
        f"!= total {total}",
    )
    check(
        sold == STOCK and held == 0 and available == 0 and sales["disponible"] == 0,
        f"not sold out: sold {sold} of {STOCK}, held {held}, available {available} "
        f"(API {sales['disponible']}), queue {qhash.get('st')}, refusals {result['refusals']}, "
        f"confirm failures {result['confirmFailed']}",
    )
    check(
        qhash.get("st") == "AGOTADA" and public["estado"] == "AGOTADA",
        f"queue {qhash.get('st')} / {public['estado']} after the sell-out",
    )
    check(
        result["refusals"] == {} and result["confirmFailed"] == 0,
        f"admitted buyers refused: {result['refusals']}, confirms failed {result['confirmFailed']}",
    )
    audit = _cli(a, "audit")
    check(
        audit.returncode == 0 and " 0 violations" in audit.stdout,
        f"audit (exit {audit.returncode}): {(audit.stdout + audit.stderr)[-1500:]}",
    )

    # Every order's buyer was admitted: its place USADO with that very order, the token it
    # used issued to it; every hold the crowd got is one of those orders, and back.
    check(
        len(orders) == summary["converted"] == result["held"],
        f"{len(orders)} orders, {summary['converted']} admissions used, crowd held "
        f"{result['held']}",
    )
    no_token = []
    for order in orders:
        holder = order["usuarioId"]
        place = places.get(holder) or {}
        if not (
            holder in admitted
            and place.get("e") == "USADO"
            and place.get("o") == order["id"]
            and qhash.get(f"t:{place.get('t')}") == holder
        ):
            no_token.append(f"{order['id']} of {holder} (place {place})")
    check(not no_token, f"{len(no_token)} orders without an admission: {no_token[:3]}")
    crowd_holds = {users[i]: order_id for i, order_id in result["holds"]}
    check(
        crowd_holds == {o["usuarioId"]: o["id"] for o in orders},
        f"the crowd's {len(crowd_holds)} holds are not the {len(orders)} orders",
    )

    # Nobody admitted twice: one admission token per buyer, in Redis and on the sockets.
    twice = [(u, n) for u, n in Counter(token_users).most_common(3) if n > 1]
    check(
        not twice and len(token_users) == summary["admitted"],
        f"admitted twice: {twice}; {len(token_users)} tokens, {summary['admitted']} admitted",
    )
    told = Counter(i for i, _, _ in result["admissions"])
    check(
        told and max(told.values()) == 1 and {users[i] for i in told} == admitted,
        f"admissions told on the sockets: {len(told)} buyers, most {told.most_common(2)}, "
        f"{len({users[i] for i in told} ^ admitted)} differ from Redis",
    )
    check(
        summary["admissions_expired"] == 0 and summary["lost"] == 0,
        f"admissions expired {summary['admissions_expired']}, buyers lost {summary['lost']}",
    )

    # Every buyer never admitted was told the sale is over, and reads AGOTADO.
    not_told = never - {users[i] for i in result["soldOutBuyers"]}
    check(
        len(never) == CROWD - summary["admitted"] > 0
        and not not_told
        and result["soldOut"] == len(never),
        f"{len(not_told)} of {len(never)} waiting buyers not told queue:sold-out "
        f"({result['soldOut']} told)",
    )
    waiting = [u for u in never if (places.get(u) or {}).get("e") != "ESPERANDO"]
    check(not waiting, f"{len(waiting)} waiting buyers not ESPERANDO (+ AGOTADA = AGOTADO)")
    check(public["enCola"] == len(never), f"enCola {public['enCola']} != {len(never)}")
    for i in sorted(index[u] for u in never)[:2]:  # one on each server, over HTTP
        api = (a, b)[i % 2]
        me = httpx.get(f"{api.url}/api/events/{eid}/queue/me", headers=bearer(buyers[i][1]))
        check(me.json().get("estado") == "AGOTADO", f"a waiting buyer reads {me.text}")

    # Fairness: the opening placed the pre-queue in the revealed seed's HMAC order
    # (onsale queue verify), and the admissions followed that order: the admitted buyers
    # are its head, admitted one after the other in that order (the feed keeps every
    # admission here: 10,000 entries, a few thousand written).
    seed = public.get("semilla") or ""
    check(
        seed and hashlib.sha256(bytes.fromhex(seed)).hexdigest() == public["compromisoSemilla"],
        f"seed {seed!r} does not match compromisoSemilla {public['compromisoSemilla']}",
    )
    verify = _cli(a, "queue", "verify", eid)
    check(
        verify.returncode == 0 and f"{CROWD} in the join list, {CROWD} placed" in verify.stdout,
        f"queue verify (exit {verify.returncode}): {(verify.stdout + verify.stderr)[-1500:]}",
    )
    if seed:
        head = _hmac_order(seed, users)[: len(admitted)]
        check(
            set(head) == admitted,
            f"{len(admitted - set(head))} admitted buyers are not at the head of the HMAC order",
        )
        check(
            len(admitted_in_order) == summary["admitted"],
            f"the feed kept {len(admitted_in_order)} of {summary['admitted']} admissions",
        )
        first = next(
            (k for k, (x, y) in enumerate(zip(admitted_in_order, head, strict=False)) if x != y),
            None,
        )
        if first is not None:
            problems.append(
                f"admission {first + 1} out of the HMAC order: admitted "
                f"{admitted_in_order[first : first + 3]}, expected {head[first : first + 3]}"
            )

    assert not problems, "\n".join(problems)
