"""Per-event work that anyone could multiply, bounded (issue 17, items 10 and 14): event
creation is rate-limited per organizer, /health/ready and /metrics read Redis per event at
most once per couple of seconds whatever the request rate, a user room tails only the
events its user buys in, and /metrics' per-event series need METRICS_TOKEN when it is set.
Real HTTP and WebSocket against real server processes and redis-servers."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from tests.integration.conftest import (
    REPO,
    ApiServer,
    bearer,
    create_event,
    expect_problem,
    register,
    unique_email,
)
from tests.integration.test_ws import connect, drain, send, until, ws_url

METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _login_admin(server: ApiServer) -> str:
    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"],
        cwd=REPO,
        env=server.env,
        check=True,
        capture_output=True,
    )
    r = httpx.post(
        f"{server.url}/api/auth/login", json={"email": "admin@test.com", "password": "Admin123!"}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


@pytest.fixture(scope="module")
def ops(api_factory: Callable[..., ApiServer]) -> ApiServer:
    """A server with a low event-creation limit and a metrics token."""
    server = api_factory(EVENTS_PER_HOUR="3", METRICS_TOKEN=METRICS_TOKEN)
    server.tokens["ADMIN"] = _login_admin(server)
    return server


def _event_body(name: str) -> dict[str, Any]:
    return {
        "nombre": name,
        "descripcion": "test",
        "fecha": "2027-06-01T20:00:00Z",
        "ubicacion": "Madrid Arena",
        "capacidadTotal": 10,
        "precioBase": 10,
        "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 10, "beneficios": []}],
    }


def _create(server: ApiServer, token: str, name: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/events", json=_event_body(name), headers=bearer(token), timeout=30
    )


def _hold(server: ApiServer, token: str, event: dict[str, Any], qty: int) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/api/orders",
        headers=bearer(token),
        json={
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": qty}],
        },
        timeout=30,
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def _ws_counts(server: ApiServer) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{server.url}/health/ready").json()["checks"]["ws"]
    return counts


@pytest.fixture(scope="module")
def many_events(ops: ApiServer) -> list[dict[str, Any]]:
    """40 armed events (created by the admin, whom the creation limit does not count)."""
    admin = ops.tokens["ADMIN"]
    with ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(
                lambda i: create_event(ops, admin, [("A", 1.0, 10)], nombre=f"many-{i}"),
                range(40),
            )
        )


# -- item 10: event creation -----------------------------------------------------------


def test_event_creation_is_rate_limited_per_organizer(ops: ApiServer) -> None:
    def total() -> int:
        count: int = httpx.get(f"{ops.url}/api/events").json()["pagination"]["total"]
        return count

    org, _ = register(ops, unique_email("org-limit"), role="ORGANIZADOR")
    for i in range(3):
        assert _create(ops, org, f"allowed-{i}").status_code == 201
    before = total()
    refused = _create(ops, org, "one-too-many")
    body = expect_problem(refused, 429)
    assert body["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert total() == before  # nothing stored, nothing armed
    # Per organizer: another one still may; an ADMIN is not counted.
    other, _ = register(ops, unique_email("org-other"), role="ORGANIZADOR")
    assert _create(ops, other, "someone-else").status_code == 201
    for i in range(4):
        assert _create(ops, ops.tokens["ADMIN"], f"admin-{i}").status_code == 201
    # An invalid request is not counted against the organizer.
    fresh, _ = register(ops, unique_email("org-invalid"), role="ORGANIZADOR")
    bad = {**_event_body("past"), "fecha": "2001-01-01T00:00:00Z"}
    for _ in range(4):
        r = httpx.post(f"{ops.url}/api/events", json=bad, headers=bearer(fresh))
        assert r.status_code == 422, r.text
    assert _create(ops, fresh, "valid-after-mistakes").status_code == 201


# -- item 10: health and metrics ---------------------------------------------------------


def _calls(client: redis.Redis, command: str) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_health_and_metrics_read_redis_per_event_at_most_every_two_seconds(
    ops: ApiServer, many_events: list[dict[str, Any]]
) -> None:
    n = len(many_events)
    client = redis.Redis.from_url(ops.redis.url)
    try:
        httpx.get(f"{ops.url}/metrics")  # the first read, so all below share at most two
        inventories, lags = _calls(client, "hgetall"), _calls(client, "xinfo|groups")
        with httpx.Client(base_url=ops.url, timeout=30) as h:
            for _ in range(20):
                assert h.get("/health/ready").status_code == 200
                assert h.get("/metrics").status_code == 200
        read_inventories = _calls(client, "hgetall") - inventories
        read_lags = _calls(client, "xinfo|groups") - lags
    finally:
        client.close()
    # Per request that was n inventories (/metrics) and n order logs (both): 20n of each.
    # Now the 40 requests share a read every 2 s (the writer reads some logs on its own).
    assert read_inventories <= 3 * n, read_inventories
    assert read_lags <= 5 * n, read_lags


def test_metrics_serve_aggregates_always_and_per_event_series_only_with_the_token(
    ops: ApiServer, many_events: list[dict[str, Any]]
) -> None:
    buyer, _ = register(ops, unique_email("metrics-buyer"))
    event = many_events[0]
    _hold(ops, buyer, event, 4)
    series = re.compile(r'^onsale_tickets_held\{event="([^"]+)"\} ([0-9.e+]+)$', re.M)

    def scrape(token: str | None) -> str:
        # Fresh figures every 2 s at most: wait for the hold to show in the aggregate.
        for _ in range(50):
            r = httpx.get(f"{ops.url}/metrics", headers=bearer(token))
            assert r.status_code == 200, r.text
            held = re.search(r"^onsale_tickets_held_all ([0-9.e+]+)$", r.text, re.M)
            if held and float(held.group(1)) >= 4:
                return r.text
            time.sleep(0.1)
        raise AssertionError(r.text[-2000:])

    public = scrape(None)
    assert re.search(r"^onsale_events_armed [0-9.e+]+$", public, re.M)
    assert not series.search(public), "per-event series served without the token"
    assert not series.search(scrape("wrong-token-0123456789abcdef"))
    private = scrape(METRICS_TOKEN)
    held = {m.group(1): float(m.group(2)) for m in series.finditer(private)}
    assert held[event["id"]] == 4
    assert len(held) >= len(many_events)


# -- item 10: user rooms -----------------------------------------------------------------


@pytest.fixture
def buyer_room(ops: ApiServer) -> Iterator[tuple[str, str]]:
    token, user = register(ops, unique_email("room-buyer"))
    yield token, user["id"]


@pytest.mark.asyncio
async def test_a_user_room_tails_only_the_events_its_user_buys_in(
    ops: ApiServer, many_events: list[dict[str, Any]], buyer_room: tuple[str, str]
) -> None:
    token, user_id = buyer_room
    await asyncio.sleep(0.5)
    baseline = _ws_counts(ops)["tailedStreams"]
    async with connect(ws_url(ops, token)) as ws:
        await send(ws, "join:user", userId=user_id)
        await until(ws, lambda m: m["event"] == "joined")
        await asyncio.sleep(1.5)  # past a refresh of the user rooms' events
        # It used to tail every armed event's feed (40 here) for this one user room.
        assert _ws_counts(ops)["tailedStreams"] == baseline
        event = many_events[7]
        order = _hold(ops, token, event, 1)
        got = await until(ws, lambda m: m["event"] == "order:status-change", timeout=10)
        assert got[-1]["data"]["orderId"] == order["id"]
        assert got[-1]["data"]["nuevoEstado"] == "RESERVED"
        assert _ws_counts(ops)["tailedStreams"] == baseline + 1
        r = httpx.put(
            f"{ops.url}/api/orders/{order['id']}/confirm",
            json={"metodoPago": "card", "transactionId": "bounded-t1"},
            headers=bearer(token),
        )
        assert r.status_code == 200, r.text
        got = await until(ws, lambda m: m["event"] == "order:status-change", timeout=10)
        assert got[-1]["data"]["nuevoEstado"] == "CONFIRMED"
        # Another user's order elsewhere neither reaches this room nor adds a stream.
        other, _ = register(ops, unique_email("room-other"))
        _hold(ops, other, many_events[8], 1)
        assert not [m for m in await drain(ws, 1.5) if m["event"] == "order:status-change"]
        assert _ws_counts(ops)["tailedStreams"] == baseline + 1
    for _ in range(50):  # the room closed: its stream is let go
        if _ws_counts(ops)["tailedStreams"] == baseline:
            break
        await asyncio.sleep(0.1)
    assert _ws_counts(ops)["tailedStreams"] == baseline
