"""SIGKILL one of two API workers in the middle of an on-sale rush.

Eight client threads buy through HTTP the way a careful client does: every hold carries an
``Idempotency-Key`` and every confirm a ``transactionId``, so a request cut off by the
crash is retried on a new connection without ever holding or selling twice. When a
hundred holds are in, one uvicorn worker is SIGKILLed.

Checked: clients see the crash only as connection errors (never a 5xx, never before the
kill); uvicorn's supervisor respawns the worker and the new one serves; every hold ends
CONFIRMED or EXPIRED (holds last 3 s); sold == the confirms the clients saw, exactly;
``onsale audit`` is clean.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.faults.conftest import (
    ApiServer,
    auth,
    create_event,
    register,
    run_audit,
    seed_and_login_admin,
    startups,
    wait_until,
    worker_pids,
)

pytestmark = pytest.mark.slow

CLIENTS = 8
MAX_ORDERS_PER_CLIENT = 80
RUSH_DEADLINE_S = 25.0
KILL_AFTER_HOLDS = 100
ATTEMPTS = 5  # per request, on connection errors only
PER_CATEGORY = 300
HOLD_MINUTES = "0.05"  # 3 s


@dataclass
class Outcome:
    held: dict[str, int] = field(default_factory=dict)  # order id -> tickets
    confirmed: dict[str, int] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)  # 4xx statuses (sold out, expired)
    server_errors: list[tuple[str, int, str]] = field(default_factory=list)
    connection_errors: list[tuple[float, str]] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Buyer:
    """One client thread with a keep-alive connection, reconnecting after a crash."""

    def __init__(self, server: ApiServer, token: str, outcome: Outcome) -> None:
        self.server = server
        self.token = token
        self.outcome = outcome
        self.client = self._connect()

    def _connect(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=auth(self.token), timeout=15)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        for _ in range(ATTEMPTS):
            try:
                r = self.client.request(method, path, **kw)
            except httpx.TransportError as e:
                with self.outcome.lock:
                    self.outcome.connection_errors.append((time.monotonic(), repr(e)))
                self.client.close()
                self.client = self._connect()
                continue
            if r.status_code >= 500:
                with self.outcome.lock:
                    self.outcome.server_errors.append((path, r.status_code, r.text[:300]))
            return r
        with self.outcome.lock:
            self.outcome.gave_up.append(f"{method} {path}")
        return None

    def run(self, n: int, event: dict[str, Any], deadline: float) -> None:
        cats = [c["id"] for c in event["categorias"]]
        try:
            for i in range(MAX_ORDERS_PER_CLIENT):
                if time.monotonic() > deadline:
                    return
                qty = 1 + (i % 2)
                body = {
                    "eventoId": event["id"],
                    "tickets": [{"categoriaId": cats[(n + i) % 2], "cantidad": qty}],
                }
                r = self.request(
                    "POST", "/api/orders", json=body, headers={"Idempotency-Key": f"c{n}-{i}"}
                )
                if r is None or r.status_code != 201:
                    if r is not None and r.status_code < 500:
                        with self.outcome.lock:
                            self.outcome.refused.append(r.status_code)
                    continue
                order_id = r.json()["id"]
                with self.outcome.lock:
                    self.outcome.held[order_id] = qty
                if i % 3 == 0:
                    continue  # left to expire
                c = self.request(
                    "PUT",
                    f"/api/orders/{order_id}/confirm",
                    json={"metodoPago": "card", "transactionId": f"tx-{order_id}"},
                )
                if c is not None and c.status_code == 200:
                    assert c.json()["estado"] == "CONFIRMED"
                    with self.outcome.lock:
                        self.outcome.confirmed[order_id] = qty
                elif c is not None and c.status_code < 500:
                    with self.outcome.lock:
                        self.outcome.refused.append(c.status_code)
        finally:
            self.client.close()


def _sales(server: ApiServer, admin: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{server.url}/api/admin/events/{event_id}/sales", headers=auth(admin), timeout=30
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_sigkill_of_one_worker_mid_rush_loses_and_duplicates_nothing(
    api_factory: Callable[..., ApiServer],
) -> None:
    server = api_factory(
        workers=2,
        ORDER_RESERVATION_TIMEOUT_MINUTES=HOLD_MINUTES,
        SWEEP_INTERVAL_SECONDS="1",
        LOG_LEVEL="info",  # uvicorn's "Application startup complete" tells workers apart
    )
    assert wait_until(lambda: startups(server) >= 2, 60), server.log()
    workers = worker_pids(server)
    assert len(workers) == 2, workers
    admin = seed_and_login_admin(server)
    org, _ = register(server, "org-kill@example.com", role="ORGANIZADOR")
    event = create_event(server, org, [("A", 20, PER_CATEGORY), ("B", 40, PER_CATEGORY)])
    tokens = [register(server, f"rush{n}@example.com")[0] for n in range(CLIENTS)]

    outcome = Outcome()
    deadline = time.monotonic() + RUSH_DEADLINE_S
    victim = workers[0]
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [
            pool.submit(Buyer(server, token, outcome).run, n, event, deadline)
            for n, token in enumerate(tokens)
        ]
        assert wait_until(lambda: len(outcome.held) >= KILL_AFTER_HOLDS, RUSH_DEADLINE_S, 0.01)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        for f in futures:
            f.result()
    assert len(outcome.held) > KILL_AFTER_HOLDS, "the rush ended before the crash mattered"

    # The crash is visible to clients only as connection errors, and only after it.
    assert not outcome.server_errors, outcome.server_errors[:5]
    assert not outcome.gave_up, outcome.gave_up
    assert all(at >= killed_at for at, _ in outcome.connection_errors), outcome.connection_errors
    assert len(outcome.connection_errors) <= 2 * CLIENTS, outcome.connection_errors
    assert set(outcome.refused) <= {409}, outcome.refused

    # uvicorn's supervisor respawns the dead worker; the new one starts and serves.
    respawned = wait_until(
        lambda: (lambda pids: len(pids) == 2 and victim not in pids)(worker_pids(server)), 30
    )
    assert respawned, f"worker {victim} was not replaced: {worker_pids(server)}"
    assert wait_until(lambda: startups(server) >= 3, 60), server.log()
    for _ in range(20):  # new connections, spread over both workers by the kernel
        assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200

    # Every hold confirmed or expired; sold is exactly what the clients saw confirmed.
    assert wait_until(lambda: _sales(server, admin, event["id"])["retenidos"] == 0, 20), _sales(
        server, admin, event["id"]
    )
    sales = _sales(server, admin, event["id"])
    assert sales["vendidos"] == sum(outcome.confirmed.values()), (
        sales,
        len(outcome.confirmed),
    )
    assert sales["disponibles"] + sales["vendidos"] == sales["total"] == 2 * PER_CATEGORY
    with httpx.Client(base_url=server.url, headers=auth(admin), timeout=30) as client:
        states = {
            order_id: client.get(f"/api/orders/{order_id}").json()["estado"]
            for order_id in outcome.held
        }
    confirmed = {o for o, s in states.items() if s == "CONFIRMED"}
    assert set(states.values()) <= {"CONFIRMED", "EXPIRED"}, states
    assert confirmed == set(outcome.confirmed)
    cli = run_audit(server.redis.url, server.env)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    print(
        f"holds {len(outcome.held)}, confirmed {len(outcome.confirmed)}, "
        f"connection errors {len(outcome.connection_errors)}, refused {len(outcome.refused)}, "
        f"worker {victim} respawned as {worker_pids(server)}"
    )
