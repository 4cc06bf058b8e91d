"""``LOG_FORMAT=json onsale serve`` (two workers, real processes): every line of stdout and
stderr is one JSON object, the start-up banner and uvicorn's access lines included, and the
access line carries the request id the response returned. Without it (development), the
banner is readable text, printed once with everything an operator looks for, and the seed
result is printed once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def _serve(tmp: Path, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp)),
        "PYTHONPATH": str(REPO),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATA_DIR": str(tmp / "data"),
        "BCRYPT_ROUNDS": "4",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", *args],
        cwd=tmp,
        env=full_env,
        stdout=(tmp / "stdout").open("wb"),
        stderr=(tmp / "stderr").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "stderr").read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("onsale serve did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _json_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text().splitlines():
        record = json.loads(line)  # every line, or the test fails here
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_json_logs_are_one_object_per_line_in_every_worker(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "--workers", "2", "--access-log", LOG_FORMAT="json")
    try:
        deadline = time.monotonic() + 30
        while (tmp_path / "stderr").read_text().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, (tmp_path / "stderr").read_text()
            time.sleep(0.1)
        given = httpx.get(f"{url}/api/events", headers={"X-Request-Id": "trace-abc.1"})
        assert given.headers["x-request-id"] == "trace-abc.1"
        made = httpx.post(f"{url}/api/auth/login", json={"email": 'a"b\n'}, timeout=10)
        assert made.status_code == 422
        bad = httpx.get(f"{url}/health/live", headers={"X-Request-Id": "x" * 129})
        assert bad.headers["x-request-id"] != "x" * 129
        assert len({made.headers["x-request-id"], bad.headers["x-request-id"]}) == 2
    finally:
        _stop(proc)
    out, err = _json_lines(tmp_path / "stdout"), _json_lines(tmp_path / "stderr")
    records = out + err
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records), records
    banner = [r for r in out if r["logger"] == "onsale"]
    assert len(banner) == 1 and banner[0]["url"] == f"{url}/", banner
    assert banner[0]["schema"] == f"{url}/schema"
    access = {r["request_id"]: r for r in out if r["logger"] == "uvicorn.access"}
    assert access["trace-abc.1"]["path"] == "/api/events"
    assert access["trace-abc.1"]["status"] == 200
    assert access[made.headers["x-request-id"]]["status"] == 422
    assert access[bad.headers["x-request-id"]]["path"] == "/health/live"
    started = [r for r in err if "Application startup complete" in r["message"]]
    assert len(started) == 2  # both workers logged through the same configuration
    if jq := shutil.which("jq"):
        for name in ("stdout", "stderr"):
            subprocess.run(
                [jq, "-e", "."],
                stdin=(tmp_path / name).open(),
                check=True,
                stdout=subprocess.DEVNULL,
            )


def test_text_banner_is_printed_once_with_what_an_operator_needs(tmp_path: Path) -> None:
    proc, url = _serve(tmp_path, "--seed")
    _stop(proc)
    out = (tmp_path / "stdout").read_text()
    err = (tmp_path / "stderr").read_text()
    both = out + err
    assert out.count("serving on") == 1, out
    for needed in (
        f"{url}/",
        f"{url}/schema",
        "admin@test.com / Admin123!",
        str((tmp_path / "data").resolve()),
        "redis",
        "store",
    ):
        assert needed in out, (needed, out)
    assert both.count("seed: ") == 1, both
    assert "BuildBackendWarning" not in both
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])  # development: readable text, not JSON
