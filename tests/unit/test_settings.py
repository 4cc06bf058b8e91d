"""Settings: defaults, parsing, and one clear line naming the variable on a bad value."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

from api.security import make_jwt_auth
from api.settings import (
    DEV_SECRET_FILE,
    Settings,
    SettingsError,
    jwt_secret,
    load_settings,
    parse_duration,
    read_dotenv,
)
from engine.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = load_settings({})
    assert s.app_env == "development" and s.port == 3000
    assert s.redis_url is None and s.mongodb_uri is None
    assert s.hold_ttl_ms == 600_000
    assert s.jwt_expires_in == 7 * 86400
    assert s.max_tickets_per_order == 10 and s.rate_limit_per_minute == 120
    assert s.confirm_durability == "redis"
    assert s.jwt_secret == ""  # development: jwt_secret() keeps one under DATA_DIR


def test_workers_default_to_the_usable_cores_unless_web_concurrency_says() -> None:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert load_settings({}).workers == cores
    assert load_settings({"WEB_CONCURRENCY": "3"}).workers == 3


def test_decimal_reservation_minutes() -> None:
    assert load_settings({"ORDER_RESERVATION_TIMEOUT_MINUTES": "0.05"}).hold_ttl_ms == 3000


@pytest.mark.parametrize(
    ("raw", "seconds"), [("15m", 900), ("12h", 43200), ("7d", 604800), ("30s", 30), ("60", 60)]
)
def test_durations(raw: str, seconds: int) -> None:
    assert parse_duration("JWT_EXPIRES_IN", raw) == seconds


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"WEB_CONCURRENCY": "many"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"MONGODB_URI": "postgres://x"}, "MONGODB_URI"),
        ({"JWT_EXPIRES_IN": "7 weeks"}, "JWT_EXPIRES_IN"),
        ({"ORDER_RESERVATION_TIMEOUT_MINUTES": "-1"}, "ORDER_RESERVATION_TIMEOUT_MINUTES"),
        ({"ORDER_RESERVATION_TIMEOUT_MINUTES": "nan"}, "ORDER_RESERVATION_TIMEOUT_MINUTES"),
        ({"LOW_STOCK_THRESHOLD": "lots"}, "LOW_STOCK_THRESHOLD"),
        ({"MAX_TICKETS_PER_ORDER": "0"}, "MAX_TICKETS_PER_ORDER"),
        ({"RATE_LIMIT_PER_MINUTE": "-5"}, "RATE_LIMIT_PER_MINUTE"),
        ({"CONFIRM_DURABILITY": "disk"}, "CONFIRM_DURABILITY"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"RUN_WRITER": "maybe"}, "RUN_WRITER"),
        ({"APP_ENV": "production"}, "JWT_SECRET"),
        ({"APP_ENV": "production", "JWT_SECRET": "short"}, "JWT_SECRET"),
        (
            {
                "APP_ENV": "production",
                "JWT_SECRET": "your-super-secure-secret-key-change-in-production",
            },
            "JWT_SECRET",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(name) and "\n" not in message


def test_production_accepts_a_strong_secret_and_keeps_bcrypt_cost() -> None:
    s = load_settings({"APP_ENV": "production", "JWT_SECRET": "x" * 40, "BCRYPT_ROUNDS": "4"})
    assert s.production and s.bcrypt_rounds == 12 and s.host == "0.0.0.0"


def test_dotenv(tmp_path: Path) -> None:
    f = tmp_path / ".env"
    f.write_text("# comment\nPORT=4000\nexport LOG_LEVEL='debug'\n\nJWT_EXPIRES_IN=\"12h\"\n")
    assert read_dotenv(f) == {"PORT": "4000", "LOG_LEVEL": "debug", "JWT_EXPIRES_IN": "12h"}


def test_cli_fails_start_up_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "audit"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PORT": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0], proc.stderr


# -- the .env file -----------------------------------------------------------------------


def test_dotenv_strips_inline_comments(tmp_path: Path) -> None:
    f = tmp_path / ".env"
    f.write_text(
        "CONFIRM_DURABILITY=store   # redis | replica | store\n"
        "PORT=4001 # the port\n"
        "JWT_SECRET='a#b$c-0123456789abcdef'  # quoted: the # and $ are the value's\n"
    )
    env = read_dotenv(f)
    assert env == {
        "CONFIRM_DURABILITY": "store",
        "PORT": "4001",
        "JWT_SECRET": "a#b$c-0123456789abcdef",
    }


def test_settings_build_from_a_copy_of_env_example(tmp_path: Path) -> None:
    """``cp .env.example .env`` then start: every value in it is accepted."""
    dotenv = tmp_path / ".env"
    shutil.copy(REPO / ".env.example", dotenv)
    s = load_settings({}, dotenv=dotenv)
    assert s.confirm_durability == "redis" and s.port == 3000 and s.log_level == "info"
    assert s.data_dir == Path("var") and s.rate_limit_per_minute == 120
    # the environment wins over the file
    assert load_settings({"PORT": "4002"}, dotenv=dotenv).port == 4002


# -- the development JWT secret ----------------------------------------------------------


def _token_roundtrip(issuer: Settings, verifier: Settings) -> Token:
    first, second = make_jwt_auth(issuer), make_jwt_auth(verifier)
    raw = first.create_token(identifier="u1", token_extras={"role": "COMPRADOR"})
    return second.token_cls.decode(
        raw, second.token_secret, second.algorithm, require_claims=["exp", "iat", "sub"]
    )


def test_development_secret_is_kept_under_data_dir(tmp_path: Path) -> None:
    """Two starts on the same DATA_DIR accept each other's tokens; the file is 0600."""
    env = {"DATA_DIR": str(tmp_path / "data")}
    assert _token_roundtrip(load_settings(env), load_settings(env)).sub == "u1"
    path = tmp_path / "data" / DEV_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32
    assert jwt_secret(load_settings(env)) == path.read_text().strip()
    # another DATA_DIR, another secret; a token of one is refused by the other
    other = load_settings({"DATA_DIR": str(tmp_path / "other")})
    assert jwt_secret(other) != jwt_secret(load_settings(env))
    with pytest.raises(NotAuthorizedException):
        _token_roundtrip(load_settings(env), other)


def test_jwt_secret_variable_wins_and_writes_no_file(tmp_path: Path) -> None:
    s = load_settings({"DATA_DIR": str(tmp_path), "JWT_SECRET": "s" * 40})
    assert jwt_secret(s) == "s" * 40
    assert not (tmp_path / DEV_SECRET_FILE).exists()


def _secret_in_child(data_dir: str, queue: Any) -> None:
    queue.put(jwt_secret(load_settings({"DATA_DIR": data_dir})))


def test_workers_starting_together_agree_on_the_secret(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    children = [ctx.Process(target=_secret_in_child, args=(str(tmp_path), queue)) for _ in range(6)]
    for child in children:
        child.start()
    secrets_seen = {queue.get(timeout=60) for _ in children}
    for child in children:
        child.join(60)
    assert len(secrets_seen) == 1
    assert secrets_seen == {(tmp_path / DEV_SECRET_FILE).read_text().strip()}
    assert [p.name for p in tmp_path.iterdir()] == [DEV_SECRET_FILE]  # no temporary left


def test_an_unusable_secret_file_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / DEV_SECRET_FILE).write_text("short\n")
    with pytest.raises(SettingsError) as info:
        jwt_secret(load_settings({"DATA_DIR": str(tmp_path)}))
    assert str(info.value).startswith("JWT_SECRET") and "\n" not in str(info.value)


# -- start-up refusals of the CLI ---------------------------------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("args", [("seed",), ("serve", "--seed")], ids=["seed", "serve-seed"])
def test_seed_is_refused_in_production(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = _cli(*args, APP_ENV="production", JWT_SECRET="p" * 40, DATA_DIR=str(tmp_path))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "APP_ENV=production" in lines[0], proc.stderr
    assert not (tmp_path / "onsale.db").exists()  # nothing was started or written


def test_unreachable_mongodb_is_one_line_within_seconds(tmp_path: Path) -> None:
    uri = "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=500"
    started = time.monotonic()
    # PORT not 1: serve listens on its port before the check, and would answer itself.
    proc = _cli("serve", MONGODB_URI=uri, DATA_DIR=str(tmp_path), PORT=str(free_port()))
    assert time.monotonic() - started < 15
    assert proc.returncode not in (0, None), proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"onsale: MONGODB_URI: cannot reach {uri}: "), lines[0]
    assert "Traceback" not in proc.stderr and "Connection refused" in lines[0]


def test_unreachable_mongodb_uri_hides_its_password(tmp_path: Path) -> None:
    uri = "mongodb://app:hunter2@127.0.0.1:1/x?serverSelectionTimeoutMS=300"
    proc = _cli("seed", MONGODB_URI=uri, DATA_DIR=str(tmp_path))
    assert proc.returncode != 0 and "hunter2" not in proc.stderr, proc.stderr
    assert "mongodb://app:***@127.0.0.1:1/x" in proc.stderr, proc.stderr
