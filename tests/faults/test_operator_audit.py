"""``onsale audit``, the operator's check, run as an operator runs it (a separate process).

Exit 0 and a summary line when every invariant holds; exit 1 and one ``VIOLATION`` line per
problem when one does not; an unreachable Redis is not a clean bill of health and must not
read like one (no traceback, not the "violations found" code either). In the zero-setup
mode (no ``REDIS_URL``) it must audit the embedded Redis the server is using, and that
Redis must survive a restart of ``onsale serve`` (AOF replay), holds included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from engine import keys
from engine.redis_server import RedisServer, free_port
from tests.faults.conftest import REPO, auth, run_audit
from tests.integration.conftest import TEST_SECRET

pytestmark = pytest.mark.slow


def _arm(url: str) -> None:
    """An event with one category, armed the way the engine arms it."""
    import asyncio

    from redis.asyncio import Redis

    from engine.core import Engine
    from engine.models import CategorySpec

    async def arm() -> None:
        client = Redis.from_url(url)
        engine = Engine(client)
        await engine.start()
        await engine.arm_event("audited", [CategorySpec(id="a", name="A", price=1, total=10)])
        await engine.hold("audited", "u1", [("a", 3)])
        await client.aclose()

    asyncio.run(arm())


def test_clean_redis_exits_0_with_a_summary(fresh_redis_server: RedisServer) -> None:
    _arm(fresh_redis_server.url)
    cli = run_audit(fresh_redis_server.url)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.strip() == "audit: 1 events, 1 categories, 1 orders, 0 violations"


@pytest.mark.parametrize(
    "damage",
    ["available", "held", "deadline"],
)
def test_each_broken_invariant_exits_1_naming_it(
    fresh_redis_server: RedisServer, damage: str
) -> None:
    _arm(fresh_redis_server.url)
    with SyncRedis.from_url(fresh_redis_server.url) as client:
        if damage == "available":  # a ticket out of nowhere
            client.hincrby(keys.inventory("audited"), "a:a", 1)
        elif damage == "held":  # counters agree with each other, not with the orders
            client.hincrby(keys.inventory("audited"), "h:a", -1)
            client.hincrby(keys.inventory("audited"), "a:a", 1)
        else:  # a live hold nobody would ever release
            client.delete(keys.deadlines("audited"))
    cli = run_audit(fresh_redis_server.url)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    lines = [line for line in cli.stdout.splitlines() if "VIOLATION" in line]
    assert lines and all("event=audited" in line for line in lines), cli.stdout


def test_unreachable_redis_is_reported_in_one_line_not_as_clean_or_violations() -> None:
    cli = run_audit(f"redis://127.0.0.1:{free_port()}/0")
    assert cli.returncode not in (0, 1), (cli.returncode, cli.stdout, cli.stderr[-500:])
    assert "Traceback" not in cli.stderr, cli.stderr[-800:]
    assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr[-800:]


# -- zero-setup mode: the embedded redis-server ------------------------------------------------


def _serve_embedded(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """``onsale serve`` with no REDIS_URL: it starts (and owns) the embedded redis-server."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "JWT_SECRET": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "warning",
        "WEB_CONCURRENCY": "1",  # one process owning the embedded Redis, as before
    }
    for name in ("REDIS_URL", "ONSALE_EMBEDDED_REDIS_URL", "EMBEDDED_REDIS_PORT"):
        env.pop(name, None)
    log = (data_dir / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (data_dir / f"serve-{port}.log").read_text()[-2000:]
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url, env
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("embedded onsale serve did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    proc, url, env = _serve_embedded(data_dir)
    state: dict[str, Any] = {"proc": proc, "url": url, "env": env, "data_dir": data_dir}
    try:
        org = _register(url, "org@embedded.test", "ORGANIZADOR")
        buyer = _register(url, "buyer@embedded.test", "COMPRADOR")
        body = {
            "nombre": "Embedded",
            "descripcion": "x",
            "fecha": "2027-01-01T20:00:00Z",
            "ubicacion": "Madrid",
            "capacidadTotal": 10,
            "precioBase": 1,
            "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 10, "beneficios": []}],
        }
        r = httpx.post(f"{url}/api/events", json=body, headers=auth(org), timeout=30)
        assert r.status_code == 201, r.text
        event = r.json()
        order = {
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": 3}],
        }
        r = httpx.post(f"{url}/api/orders", json=order, headers=auth(buyer), timeout=30)
        assert r.status_code == 201, r.text
        state.update(event=event, buyer=buyer, hold=r.json())
        yield state
    finally:
        _stop(state["proc"])


def _register(url: str, email: str, role: str) -> str:
    r = httpx.post(
        f"{url}/api/auth/register",
        json={"nombre": "N", "email": email, "password": "Secret123", "role": role},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def test_audit_without_redis_url_audits_the_running_embedded_redis(
    embedded: dict[str, Any],
) -> None:
    env = {k: v for k, v in embedded["env"].items() if k != "PORT"}
    cli = subprocess.run(
        [sys.executable, "-m", "api.cli", "audit"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "audit: 1 events, 1 categories, 1 orders" in cli.stdout, (
        "`onsale audit` with no REDIS_URL did not audit the server's embedded Redis",
        cli.stdout,
    )


def test_embedded_redis_keeps_live_holds_across_a_serve_restart(
    embedded: dict[str, Any],
) -> None:
    event, hold = embedded["event"], embedded["hold"]
    time.sleep(1.5)  # everysec has fsynced the hold
    _stop(embedded["proc"])
    proc, url, _ = _serve_embedded(embedded["data_dir"])
    embedded["proc"] = proc
    r = httpx.get(f"{url}/api/events/{event['id']}", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["categorias"][0]["disponible"] == 7, (
        "the embedded Redis came back empty: the live hold's tickets were put back on sale",
        sorted(p.name for p in (embedded["data_dir"] / "redis").glob("*.aof")),
    )
    r = httpx.get(f"{url}/api/orders/{hold['id']}", headers=auth(embedded["buyer"]), timeout=30)
    assert r.status_code == 200 and r.json()["estado"] == "RESERVED", r.text
    assert r.json()["expiraEn"] == hold["expiraEn"]
