"""``cp .env.example .env`` then ``onsale serve`` (what ``make run`` runs) starts, on the
zero-setup defaults (embedded redis-server and store), and a token issued before a
restart on the same DATA_DIR is still accepted after it (the development JWT secret is
kept in DATA_DIR/jwt-secret, mode 0600)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from engine.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def _serve(cwd: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(cwd)),
        "PYTHONPATH": str(REPO),
        "PORT": str(port),  # over the file's 3000
        "BCRYPT_ROUNDS": "4",
    }
    log = (cwd / f"serve-{port}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"], cwd=cwd, env=env, stdout=log, stderr=log
    )


def _ready(proc: subprocess.Popen[bytes], url: str, cwd: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            logs = "\n".join(p.read_text() for p in cwd.glob("serve-*.log"))
            raise AssertionError(f"onsale serve exited ({proc.returncode}):\n{logs[-3000:]}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("onsale serve did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_env_example_starts_and_tokens_survive_a_restart(tmp_path: Path) -> None:
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port)
    try:
        _ready(proc, url, tmp_path)
        r = httpx.post(
            f"{url}/api/auth/register",
            json={"nombre": "Ana", "email": "ana@example.com", "password": "Secret123"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
    finally:
        _stop(proc)
    secret = tmp_path / "var" / "jwt-secret"  # DATA_DIR=./var, from the .env
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    proc = _serve(tmp_path, port)
    try:
        _ready(proc, url, tmp_path)
        r = httpx.get(
            f"{url}/api/auth/profile", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "ana@example.com"
    finally:
        _stop(proc)
