"""Rate-limit bypass attempts against two API worker processes (``--workers 2``,
``RATE_LIMIT_PER_MINUTE=5``).

Every request opens a new connection, so the kernel spreads them over both workers; the
counters live in Redis, so the sixth attempt within the minute is refused whichever
worker serves it. Forwarding headers a client makes up (``X-Forwarded-For``,
``X-Real-IP``, ``Forwarded``) must not give it a fresh allowance.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from tests.security.conftest import ApiServer, assert_problem, auth, register, worker_pids

pytestmark = pytest.mark.slow

LIMIT = 5


@pytest.fixture(scope="module")
def limited(api_factory: Callable[..., ApiServer]) -> ApiServer:
    server = api_factory(workers=2, RATE_LIMIT_PER_MINUTE=str(LIMIT), LOG_LEVEL="info")
    deadline = time.monotonic() + 60
    while server.log().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert len(worker_pids(server)) == 2
    return server


@pytest.fixture
def fresh_counters(limited: ApiServer) -> Iterator[None]:
    """Each test starts inside a fresh one-minute window with no counters."""
    into = time.time() % 60
    if into > 40:
        time.sleep(60 - into + 0.2)
    with SyncRedis.from_url(limited.redis.url) as client:
        for key in client.scan_iter(match="os:rl:*", count=1000):
            client.delete(key)
    yield


def _login(server: ApiServer, email: str, headers: dict[str, str] | None = None) -> int:
    # A new connection per request (no shared client): spread over both workers.
    r = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": email, "password": "Secret123"},
        headers=headers or {},
        timeout=30,
    )
    if r.status_code == 429:
        assert_problem(r, (429,))
        assert r.headers.get("retry-after", "").isdigit(), r.headers
    return r.status_code


def _spoofed(i: int) -> dict[str, str]:
    return {
        "X-Forwarded-For": f"203.0.113.{i + 1}",
        "X-Real-IP": f"198.51.100.{i + 1}",
        "Forwarded": f"for=192.0.2.{i + 1}",
    }


def test_sixth_login_for_one_account_is_429_on_either_worker(
    limited: ApiServer, fresh_counters: None
) -> None:
    email = f"rl-{uuid.uuid4().hex[:8]}@example.com"
    seen = [_login(limited, email, _spoofed(i)) for i in range(LIMIT + 3)]
    assert seen[:LIMIT].count(429) == 0, seen
    assert seen[LIMIT:] == [429] * 3, seen


def test_sixth_login_from_one_client_is_429_across_workers(
    limited: ApiServer, fresh_counters: None
) -> None:
    """Different (unknown) accounts from the same address: the per-address limit."""
    seen = [_login(limited, f"probe{i}-{uuid.uuid4().hex[:6]}@example.com") for i in range(8)]
    assert seen[:LIMIT] == [401] * LIMIT, seen
    assert seen[LIMIT:] == [429] * 3, seen


def test_made_up_forwarding_headers_do_not_reset_the_limit(
    limited: ApiServer, fresh_counters: None
) -> None:
    """Different accounts, and a different made-up client address on every request."""
    seen = [
        _login(limited, f"spoof{i}-{uuid.uuid4().hex[:6]}@example.com", _spoofed(i))
        for i in range(8)
    ]
    assert seen[:LIMIT] == [401] * LIMIT, seen
    assert seen[LIMIT:] == [429] * 3, (
        "a client escaped the per-address login limit by sending X-Forwarded-For",
        seen,
    )


def test_sixth_register_from_one_client_is_429_despite_forwarding_headers(
    limited: ApiServer, fresh_counters: None
) -> None:
    seen = []
    for i in range(8):
        r = httpx.post(
            f"{limited.url}/api/auth/register",
            json={
                "nombre": "R",
                "email": f"reg{i}-{uuid.uuid4().hex[:6]}@example.com",
                "password": "Secret123",
            },
            headers=_spoofed(i),
            timeout=30,
        )
        seen.append(r.status_code)
    assert seen[:LIMIT] == [201] * LIMIT, seen
    assert seen[LIMIT:] == [429] * 3, seen


def test_sixth_order_of_one_user_is_429_across_workers(
    limited: ApiServer, fresh_counters: None
) -> None:
    org, _ = register(limited, f"org-{uuid.uuid4().hex[:6]}@example.com", role="ORGANIZADOR")
    token, _ = register(limited, f"buyer-{uuid.uuid4().hex[:6]}@example.com")
    with SyncRedis.from_url(limited.redis.url) as client:  # registering counted too
        for key in client.scan_iter(match="os:rl:*", count=1000):
            client.delete(key)
    body: dict[str, Any] = {
        "nombre": "RL",
        "descripcion": "x",
        "fecha": "2027-06-01T20:00:00Z",
        "ubicacion": "Madrid",
        "capacidadTotal": 100,
        "precioBase": 1,
        "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 100, "beneficios": []}],
    }
    event = httpx.post(f"{limited.url}/api/events", json=body, headers=auth(org), timeout=30)
    assert event.status_code == 201, event.text
    order = {
        "eventoId": event.json()["id"],
        "tickets": [{"categoriaId": event.json()["categorias"][0]["id"], "cantidad": 1}],
    }
    seen = [
        httpx.post(
            f"{limited.url}/api/orders",
            json=order,
            headers={**auth(token), **_spoofed(i)},
            timeout=30,
        ).status_code
        for i in range(8)
    ]
    assert seen[:LIMIT] == [201] * LIMIT, seen
    assert seen[LIMIT:] == [429] * 3, seen
    stock = httpx.get(f"{limited.url}/api/events/{event.json()['id']}", timeout=30).json()
    assert stock["categorias"][0]["disponible"] == 100 - LIMIT
