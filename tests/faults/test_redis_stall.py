"""A stalled Redis (SIGSTOP: the process is there, its socket accepts, nothing answers) must
not hang anything: every Redis call is bounded.

Engine level: batched script calls on the pipelined connection fail with TimeoutError once
the client's ``socket_timeout`` has passed (one timer per connection, nothing per call),
the queue of calls waiting for the connection is bounded (``RedisBusy`` past it, at once),
and after SIGCONT the same calls retried succeed, each once.

API level: a running ``onsale serve`` (default ``REDIS_TIMEOUT_S``) answers holds, event
reads and ``/health/ready`` with 503 problem+json and ``Retry-After`` within a few seconds
while Redis is stopped, and after SIGCONT serves again at once (the recovery time is
printed; run with ``-s``), with nothing lost: the sales made before the stall stand, the
holds that fell due during it are released by the expiry listener (the sweeper is off),
the WebSocket feed tailer delivers again, and the audit is clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine import connection
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.models import CategorySpec
from engine.redis_server import RedisServer
from engine.scripts import RedisBusy
from tests.faults.conftest import (
    assert_problem,
    auth,
    create_event,
    register,
    run_audit,
    start_api,
    wait_until,
)

pytestmark = pytest.mark.slow

DEFAULT_TIMEOUT_S = 2.0  # REDIS_TIMEOUT_S's default, which the API test runs with
ANSWER_WITHIN_S = 2 * DEFAULT_TIMEOUT_S + 1  # "a few seconds", with room for a slow CI
STALL_S = 6.0  # how long the API test keeps Redis stopped
HOLD_TTL_S = 3.0  # holds made before the stall fall due during it


def _stop(server: RedisServer) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)


def _resume(server: RedisServer) -> None:
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)


# -- the engine's pipelined connection --------------------------------------------------


async def test_batched_calls_to_a_stalled_redis_fail_in_time_and_succeed_once_retried(
    fresh_redis_server: RedisServer,
) -> None:
    timeout = 0.5
    client = connection.redis_client(fresh_redis_server.url, timeout_s=timeout)
    engine = Engine(client, EngineConfig(hold_ttl_ms=600_000))
    try:
        await engine.start()
        await engine.arm_event("stall", [CategorySpec(id="a", name="A", price=1, total=1000)])
        assert (await engine.hold("stall", "warm", [("a", 1)])).created
        assert engine.scripts.timeout_s == timeout  # taken from the client
        engine.scripts.max_pending = 100
        ids = [f"stall.{i:016x}" for i in range(40)]

        _stop(fresh_redis_server)
        try:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(engine.hold("stall", f"u{i}", [("a", 1)], order_id=o) for i, o in enumerate(ids)),
                return_exceptions=True,
            )
            took = time.monotonic() - started
            assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes
            assert timeout <= took < timeout * 1.25 + 0.5, took

            # Past max_pending calls waiting, a call fails at once instead of queueing.
            waiting = [
                asyncio.ensure_future(engine.hold("stall", f"w{i}", [("a", 1)]))
                for i in range(engine.scripts.max_pending + 10)
            ]
            await asyncio.sleep(0)
            busy = [t for t in waiting if t.done() and isinstance(t.exception(), RedisBusy)]
            assert len(busy) >= 10, len(busy)
            rest = await asyncio.gather(*waiting, return_exceptions=True)
            assert all(isinstance(o, RedisTimeoutError | RedisBusy) for o in rest)
        finally:
            _resume(fresh_redis_server)

        # The same holds retried (their order ids are their request ids): each holds once,
        # whether or not Redis ran the first attempt when it woke up.
        started = time.monotonic()
        retried = await asyncio.gather(
            *(engine.hold("stall", f"u{i}", [("a", 1)], order_id=o) for i, o in enumerate(ids))
        )
        print(f"engine: first calls after SIGCONT answered in {time.monotonic() - started:.3f}s")
        assert [r.order.id for r in retried] == ids
        stock = await engine.stock("stall")
        assert stock is not None
        held = stock.categories[0].held
        # The 40 retried holds and the warm one; the w* calls that reached Redis before
        # they failed may have run too (their callers were told they failed: they
        # expire like any hold the client never saw).
        assert 41 <= held <= 41 + engine.scripts.max_pending, held
        report = await audit(engine)
        assert report.clean, report.violations
    finally:
        _resume(fresh_redis_server)
        await client.aclose()


# -- a running onsale serve ---------------------------------------------------------------


def _timed(method: str, url: str, **kw: Any) -> tuple[int, float, httpx.Response | None]:
    started = time.monotonic()
    try:
        r = httpx.request(method, url, timeout=20, **kw)
    except httpx.HTTPError:
        return -1, time.monotonic() - started, None
    return r.status_code, time.monotonic() - started, r


async def _watch(
    url: str, event_id: str, frames: list[dict[str, Any]], stop: asyncio.Event
) -> None:
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send(json.dumps({"event": "join:event", "data": {"eventId": event_id}}))
        while not stop.is_set():
            try:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
            except TimeoutError:
                continue


def test_api_answers_503_in_time_during_a_redis_stall_and_recovers_with_nothing_lost(
    fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = start_api(
        tmp_path,
        fresh_redis_server,
        ORDER_RESERVATION_TIMEOUT_MINUTES=str(HOLD_TTL_S / 60),
        SWEEP_INTERVAL_SECONDS="3600",  # one sweep at start-up: releases are the listener's
        RUN_WRITER="false",
    )
    frames: list[dict[str, Any]] = []
    stop_ws = asyncio.Event()
    loop = asyncio.new_event_loop()
    ws_thread = threading.Thread(target=loop.run_forever, daemon=True)
    ws_thread.start()
    resume = threading.Timer(STALL_S + 10, _resume, (fresh_redis_server,))  # never stuck
    watcher: Any = None
    try:
        org, _ = register(server, "org-stall@example.com", role="ORGANIZADOR")
        buyer, _ = register(server, "buyer-stall@example.com")
        event = create_event(server, org, [("A", 10, 200)])
        cat = event["categorias"][0]["id"]
        orders_url = f"{server.url}/api/orders"

        def hold(qty: int = 1, key: str | None = None) -> tuple[int, float, httpx.Response | None]:
            headers = auth(buyer) | ({"Idempotency-Key": key} if key else {})
            body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": qty}]}
            return _timed("POST", orders_url, json=body, headers=headers)

        ws_url = server.url.replace("http://", "ws://") + "/ws"
        watcher = asyncio.run_coroutine_threadsafe(
            _watch(ws_url, event["id"], frames, stop_ws), loop
        )
        assert wait_until(lambda: any(f.get("event") == "joined" for f in frames), 10), frames

        # Before the stall: 5 sold (2 + 3), 4 held that fall due during the stall.
        sold_ids = []
        for qty in (2, 3):
            status, _, r = hold(qty)
            assert status == 201 and r is not None, r and r.text
            c = httpx.put(
                f"{orders_url}/{r.json()['id']}/confirm",
                json={"metodoPago": "card", "transactionId": f"tx-{qty}"},
                headers=auth(buyer),
                timeout=20,
            )
            assert c.status_code == 200, c.text
            sold_ids.append(r.json()["id"])
        due_ids = []
        for _ in range(4):
            status, _, r = hold(1)
            assert status == 201 and r is not None
            due_ids.append(r.json()["id"])

        _stop(fresh_redis_server)
        stopped_at = time.monotonic()
        resume.start()
        jobs: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", f"{server.url}/health/ready", {}),
            ("GET", f"{server.url}/api/events/{event['id']}", {}),
            ("GET", f"{orders_url}/{sold_ids[0]}", {"headers": auth(buyer)}),
        ]
        body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": 1}]}
        jobs += [("POST", orders_url, {"json": body, "headers": auth(buyer)})] * 12
        with ThreadPoolExecutor(len(jobs)) as pool:
            during = list(pool.map(lambda job: _timed(job[0], job[1], **job[2]), jobs))
        live_status, live_took, _ = _timed("GET", f"{server.url}/health/live")
        answers = [
            (job[0], job[1].removeprefix(server.url), s, round(t, 2))
            for job, (s, t, _) in zip(jobs, during, strict=True)
        ]
        print("stall answers:", answers)
        for (status, took, r), job in zip(during, jobs, strict=True):
            assert status == 503 and r is not None, (job[:2], status, took)
            assert took < ANSWER_WITHIN_S, (job[:2], took)
            if job[1].endswith("/health/ready"):
                assert r.json()["checks"]["redis"].startswith("error"), r.text
                continue
            assert_problem(r, (503,))
            assert r.headers.get("retry-after"), r.headers
        assert live_status == 200 and live_took < 1, (live_status, live_took)

        time.sleep(max(0.0, stopped_at + STALL_S - time.monotonic()))
        _resume(fresh_redis_server)
        resumed_at = time.monotonic()
        recovered: dict[str, float] = {}
        attempt = 0
        while len(recovered) < 2 and time.monotonic() - resumed_at < 30:
            if "hold" not in recovered:
                attempt += 1
                status, _, r = hold(1, key=f"recovery-{attempt}")
                if status == 201:
                    recovered["hold"] = time.monotonic() - resumed_at
            if "ready" not in recovered:
                status, _, _ = _timed("GET", f"{server.url}/health/ready")
                if status == 200:
                    recovered["ready"] = time.monotonic() - resumed_at
            time.sleep(0.01)
        print(
            f"recovery after SIGCONT: first hold 201 in {recovered.get('hold', -1):.3f}s "
            f"({attempt} attempts), /health/ready 200 in {recovered.get('ready', -1):.3f}s"
        )
        assert set(recovered) == {"hold", "ready"}, recovered
        assert max(recovered.values()) < 3, recovered

        # The expiry listener survived: the holds that fell due during the stall are
        # released (the sweeper, every hour, is not the one releasing them).
        def expired() -> bool:
            for order_id in due_ids:
                r = httpx.get(f"{orders_url}/{order_id}", headers=auth(buyer), timeout=20)
                if r.status_code != 200 or r.json()["estado"] != "EXPIRED":
                    return False
            return True

        assert wait_until(expired, HOLD_TTL_S + 5, 0.2), "due holds not released after the stall"
        # The feed tailer survived: a change after the stall reaches the WebSocket client.
        seen = len(frames)
        status, _, r = hold(1, key="after-stall")
        assert status == 201 and r is not None
        assert wait_until(
            lambda: any(f.get("event") == "ticket:stock-update" for f in frames[seen:]), 10
        ), frames[seen:]

        # Nothing lost: the sales stand; once every hold is past its deadline nothing is
        # held and exactly the 5 sold tickets are gone (holds that timed out for their
        # client but ran in Redis expire like any other).
        for order_id in sold_ids:
            r = httpx.get(f"{orders_url}/{order_id}", headers=auth(buyer), timeout=20)
            assert r.status_code == 200 and r.json()["estado"] == "CONFIRMED", r.text

        def settled() -> Any:
            r = httpx.get(f"{server.url}/api/events/{event['id']}", timeout=20)
            return r.status_code == 200 and r.json()["categorias"][0]["disponible"] == 195

        assert wait_until(settled, HOLD_TTL_S + 5, 0.2), httpx.get(
            f"{server.url}/api/events/{event['id']}", timeout=20
        ).text
        cli = run_audit(fresh_redis_server.url, server.env)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        loop.call_soon_threadsafe(stop_ws.set)
        watcher.result(10)
    finally:
        resume.cancel()
        _resume(fresh_redis_server)
        loop.call_soon_threadsafe(stop_ws.set)
        if watcher is not None:
            with contextlib.suppress(Exception):
                watcher.result(5)
        loop.call_soon_threadsafe(loop.stop)
        ws_thread.join(5)
        server.stop()
