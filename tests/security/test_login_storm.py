"""A small login storm (bcrypt cost 12) while ``/health/live`` is probed: correctness only.

Every login succeeds and every liveness probe answers 200 throughout. The latency figures
are the benchmark's job (``python -m loadtest.bench_login_storm``), never asserted here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loadtest.bench_login_storm import make_users, run_storm, summarize
from tests.security.conftest import ApiServer

pytestmark = pytest.mark.slow

LOGINS = 24
USERS = 8


def test_login_storm_every_login_200_and_health_always_200(
    api_factory: Callable[..., ApiServer],
) -> None:
    server = api_factory(BCRYPT_ROUNDS="12")
    emails = make_users(server.data_dir, USERS, rounds=12)
    raw = run_storm(server.url, emails, logins=LOGINS, concurrency=LOGINS, baseline_s=0.5)
    statuses = [status for status, _ in raw["logins"]]
    assert statuses == [200] * LOGINS, statuses
    probes = [status for _, _, status in raw["samples"]]
    assert probes and set(probes) == {200}, sorted(set(probes))
    figures = summarize(raw)
    assert figures["health_storm"]["probes"] >= 10, figures  # it was probed during the storm
    health = figures["health_storm"]
    print(
        f"login storm: {LOGINS} logins in {figures['storm_seconds']:.1f}s, /health/live "
        f"p50 {health['p50_ms']:.1f} ms p99 {health['p99_ms']:.1f} ms"
    )


def test_a_storm_past_the_bcrypt_queue_is_refused_at_once_with_503(
    api_factory: Callable[..., ApiServer],
) -> None:
    """Past BCRYPT_MAX_QUEUE waiting checks, logins get 503 + Retry-After at once (not a
    queue longer than any client would wait); the rest log in, and the server stays up."""
    server = api_factory(BCRYPT_ROUNDS="12", BCRYPT_THREADS="1", BCRYPT_MAX_QUEUE="2")
    emails = make_users(server.data_dir, 4, rounds=12)
    raw = run_storm(server.url, emails, logins=16, concurrency=16, baseline_s=0.2)
    statuses = sorted(status for status, _ in raw["logins"])
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) <= {200, 503}, statuses
    probes = [status for _, _, status in raw["samples"]]
    assert probes and set(probes) == {200}, sorted(set(probes))
    import httpx

    r = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": emails[0], "password": "x" * 10},
        timeout=30,
    )
    assert r.status_code in (401, 503)
    assert r.headers["content-type"].startswith("application/problem+json")
