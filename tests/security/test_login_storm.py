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
