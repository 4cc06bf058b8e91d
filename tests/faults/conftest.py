"""Fault-injection fixtures and helpers: real redis-server and ``onsale serve`` processes.

The API fixtures are the integration suite's (re-exported here so pytest finds them);
the helpers below find uvicorn's worker processes, run ``onsale audit`` as an operator
would, and wait for conditions with a bound on time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import (
    REPO,
    ApiServer,
    api,
    api_factory,
    create_event,
    register,
    start_api,
)

__all__ = [  # the integration fixtures, re-exported so pytest finds them here too
    "REPO",
    "ApiServer",
    "api",
    "api_factory",
    "create_event",
    "register",
    "start_api",
]

PROBLEM = "application/problem+json"


def worker_pids(server: ApiServer) -> list[int]:
    """The uvicorn worker processes of a ``--workers N`` server (not multiprocessing's
    resource tracker, which is a child of the supervisor too)."""
    assert server.process is not None
    out = subprocess.run(
        ["pgrep", "-a", "-P", str(server.process.pid)], capture_output=True, text=True
    ).stdout
    return sorted(int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line)


def startups(server: ApiServer) -> int:
    """How many worker processes finished their lifespan start-up (needs LOG_LEVEL=info)."""
    assert server.log_path is not None
    return server.log_path.read_text().count("Application startup complete")


def run_audit(
    redis_url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``onsale audit`` against a Redis, exactly as an operator runs it."""
    full = {
        **(env if env is not None else os.environ),
        "REDIS_URL": redis_url,
        "APP_ENV": "test",
        "LOG_LEVEL": "warning",
    }
    full.pop("ONSALE_EMBEDDED_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "audit"],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(r: httpx.Response, statuses: tuple[int, ...]) -> dict[str, Any]:
    """An RFC 9457 answer with one of ``statuses`` and no server internals."""
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    assert r.headers.get("content-type", "").startswith(PROBLEM), (r.headers, r.text[:500])
    assert "Traceback" not in r.text and 'File "' not in r.text, r.text[:500]
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"], body
    return body


def login(server: ApiServer, email: str, password: str) -> str:
    r = httpx.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def seed_and_login_admin(server: ApiServer) -> str:
    """``onsale seed`` against the server's Redis and store; the demo ADMIN's token."""
    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"],
        cwd=REPO,
        env=server.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return login(server, "admin@test.com", "Admin123!")
