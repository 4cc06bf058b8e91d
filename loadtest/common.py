"""Helpers shared by the benchmark scripts: machine facts, pinning, medians, JSON output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("DATA_DIR", "var")) / "bench"


def machine() -> dict[str, Any]:
    redis_version = ""
    try:
        from engine.redis_server import find_redis_server, server_version

        redis_version = ".".join(map(str, server_version(find_redis_server())))
    except Exception:
        redis_version = "unknown"
    return {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "redis": redis_version,
        "platform": platform.platform(),
    }


def pin_prefix(core: int) -> list[str]:
    """``taskset -c core`` when there are at least two cores and taskset exists."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def pin_pid(pid: int, core: int) -> bool:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return (
            subprocess.run(["taskset", "-pc", str(core), str(pid)], capture_output=True).returncode
            == 0
        )
    return False


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def wait_ready(base: str, attempts: int = 600) -> None:
    """Poll ``/health/ready`` of a server the benchmark started (bounded)."""
    import time

    import httpx

    for _ in range(attempts):
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server at {base} did not become ready")


def register(base: str, email: str, role: str = "COMPRADOR") -> str:
    """A new account's token (the server runs with cheap bcrypt in benchmarks)."""
    import httpx

    body = {"nombre": email.split("@")[0], "email": email, "password": "Secret123", "role": role}
    r = httpx.post(f"{base}/api/auth/register", json=body, timeout=30)
    r.raise_for_status()
    token: str = r.json()["token"]
    return token


def create_bulk_event(base: str, organizer: str, name: str, total: int = 10_000_000) -> Any:
    """An event with one category big enough never to sell out during a benchmark."""
    import httpx

    r = httpx.post(
        f"{base}/api/events",
        headers={"Authorization": f"Bearer {organizer}"},
        json={
            "nombre": name,
            "fecha": "2030-01-01T00:00:00Z",
            "ubicacion": "Lab",
            "capacidadTotal": total,
            "precioBase": 1,
            "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": total}],
        },
        timeout=30,
    )
    r.raise_for_status()
    return r.json()


BENCH_SECRET = "bench-secret-0123456789abcdef0123456789"


def server_env(redis_url: str, data_dir: Path, port: int, **overrides: str) -> dict[str, str]:
    """The environment of an ``onsale serve`` a benchmark starts: test mode against the
    benchmark's own Redis and data directory, rate limits off, cheap bcrypt."""
    env = {
        **os.environ,
        "APP_ENV": "test",
        "REDIS_URL": redis_url,
        "DATA_DIR": str(data_dir),
        "PORT": str(port),
        "RATE_LIMIT_PER_MINUTE": "0",
        "EVENTS_PER_HOUR": "0",
        "WS_MAX_PER_USER": "0",
        "WS_MAX_PER_ADDRESS": "0",
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "warning",
        "JWT_SECRET": BENCH_SECRET,
        "WEB_CONCURRENCY": "1",  # one worker, as the figures say, unless --workers
        **overrides,
    }
    env.pop("ONSALE_EMBEDDED_REDIS_URL", None)
    return env


def run_audit(env: dict[str, str]) -> tuple[bool, str]:
    """``onsale audit`` against the server of ``env``: (clean, its report line)."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "audit"], env=env, capture_output=True, text=True
    )
    return done.returncode == 0, done.stdout.strip() or done.stderr.strip()
