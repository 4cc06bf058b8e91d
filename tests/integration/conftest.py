"""A real API server process (``onsale serve``) against a real redis-server, per module."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.redis_server import LocalCluster, RedisServer, free_port

REPO = Path(__file__).resolve().parents[2]
TEST_SECRET = "integration-test-secret-0123456789abcdef"


@dataclass
class ApiServer:
    url: str
    redis: RedisServer | LocalCluster
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def log(self) -> str:
        return self.log_path.read_text()[-4000:] if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(
    tmp: Path,
    redis: RedisServer | LocalCluster,
    workers: int = 1,
    *,
    plain_uvicorn: bool = False,
    **env: str,
) -> ApiServer:
    """``onsale serve --workers N`` on a free port (``PORT`` in ``env``: that one); with
    ``plain_uvicorn``, the app under ``uvicorn --factory`` itself instead (its stock HTTP
    protocol, none of serve's options), as a deployment on any ASGI server runs it."""
    port = int(env.pop("PORT", 0)) or free_port()
    full_env = {
        **os.environ,
        "APP_ENV": "test",
        "REDIS_URL": redis.url,
        "REDIS_CLUSTER": "true" if isinstance(redis, LocalCluster) else "false",
        "DATA_DIR": str(tmp / "data"),
        "PORT": str(port),
        "JWT_SECRET": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_PER_MINUTE": "0",
        "EVENTS_PER_HOUR": "0",
        "LOG_LEVEL": "warning",
        **env,
    }
    full_env.pop("ONSALE_EMBEDDED_REDIS_URL", None)
    log_path = tmp / f"api-{port}.log"
    server = ApiServer(f"http://127.0.0.1:{port}", redis, tmp / "data", full_env, log_path=log_path)
    with log_path.open("wb") as log:
        command = (
            ["uvicorn", "--factory", "api.app:app_from_env", "--port", str(port)]
            if plain_uvicorn
            else ["api.cli", "serve", "--workers", str(workers)]
        )
        server.process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"API exited at start:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"API did not become ready:\n{server.log()}")


@pytest.fixture(scope="module")
def api_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ApiServer]]:
    """Start API servers (each with its own redis-server); all stopped after the module."""
    started: list[ApiServer] = []

    def factory(
        workers: int = 1, redis: RedisServer | LocalCluster | None = None, **env: str
    ) -> ApiServer:
        tmp = tmp_path_factory.mktemp("api")
        if redis is None:
            redis = RedisServer(data_dir=tmp / "redis", appendonly=True).start()
        server = start_api(tmp, redis, workers=workers, **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
        server.redis.stop()


@pytest.fixture(scope="module")
def api(api_factory: Callable[..., ApiServer]) -> ApiServer:
    """One API server per test module, seeded with the demo users and events."""
    server = api_factory()
    subprocess.run(
        [sys.executable, "-m", "api.cli", "seed"],
        cwd=REPO,
        env=server.env,
        check=True,
        capture_output=True,
    )
    for role, email, password in (
        ("ADMIN", "admin@test.com", "Admin123!"),
        ("ORGANIZADOR", "organizador@test.com", "Org123!"),
        ("COMPRADOR", "comprador@test.com", "User123!"),
    ):
        r = httpx.post(f"{server.url}/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        server.tokens[role] = r.json()["token"]
    return server


def register(api: ApiServer, email: str, role: str = "COMPRADOR") -> tuple[str, dict[str, Any]]:
    """A new user; returns (token, user)."""
    r = httpx.post(
        f"{api.url}/api/auth/register",
        json={"nombre": email.split("@")[0], "email": email, "password": "Secret123", "role": role},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return body["token"], body["user"]


def create_event(
    api: ApiServer,
    token: str,
    categories: list[tuple[str, float, int]],
    capacity: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "nombre": fields.pop("nombre", "Test Event"),
        "descripcion": "test",
        "fecha": fields.pop("fecha", "2027-06-01T20:00:00Z"),
        "ubicacion": fields.pop("ubicacion", "Madrid Arena"),
        "capacidadTotal": capacity if capacity is not None else sum(c[2] for c in categories),
        "precioBase": 10,
        "categorias": [
            {"nombre": n, "precio": p, "cantidadTotal": t, "beneficios": []}
            for n, p, t in categories
        ],
        **fields,
    }
    r = httpx.post(f"{api.url}/api/events", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return r.json()


# -- helpers shared by the HTTP test modules ---------------------------------------------

PROBLEM = "application/problem+json"


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def expect_problem(r: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The problem+json body of an error response with one of the given statuses."""
    assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    assert "Traceback" not in r.text and 'File "' not in r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code
    assert body["title"]
    assert body["detail"]
    return body


def problem_fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def assert_audit_clean(api: ApiServer, *events: str, timeout: float = 120) -> str:
    """``onsale audit`` beside a running server (its Redis and store), as an operator runs
    it, ``--event`` for each of ``events`` (every event when none): it must find nothing
    wrong. Its report."""
    command = [sys.executable, "-m", "api.cli", "audit"]
    for event_id in events:
        command += ["--event", event_id]
    done = subprocess.run(
        command, cwd=REPO, env=api.env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 violations" in done.stdout, done.stdout
    return done.stdout


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def make_world(
    api: ApiServer,
    prefix: str,
    first: list[tuple[str, float, int]],
    second: list[tuple[str, float, int]],
) -> dict[str, Any]:
    """An organizer, a buyer, another buyer and two events (the real-time test modules)."""
    org, _ = register(api, f"{prefix}-org@example.com", role="ORGANIZADOR")
    buyer, buyer_user = register(api, f"{prefix}-buyer@example.com")
    other, other_user = register(api, f"{prefix}-other@example.com")
    return {
        "org": org,
        "buyer": buyer,
        "buyer_user": buyer_user,
        "other": other,
        "other_user": other_user,
        "e1": create_event(api, org, first),
        "e2": create_event(api, org, second),
    }


def node_with(directory: Path, package: str, who: str) -> str:
    """The ``node`` binary, with ``directory``'s npm packages installed (``npm ci`` from its
    lock when ``package`` is missing); the test is skipped when node or npm is not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"node and npm are not installed: {who} needs them")
    if not (directory / "node_modules" / package).is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return node
