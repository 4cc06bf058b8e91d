"""Settings: defaults, parsing, and one clear line naming the variable on a bad value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import SettingsError, load_settings, parse_duration, read_dotenv

REPO = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = load_settings({})
    assert s.app_env == "development" and s.port == 3000
    assert s.redis_url is None and s.mongodb_uri is None
    assert s.hold_ttl_ms == 600_000
    assert s.jwt_expires_in == 7 * 86400
    assert s.max_tickets_per_order == 10 and s.rate_limit_per_minute == 120
    assert s.confirm_durability == "redis"
    assert len(s.jwt_secret) >= 32  # random per process in development
    assert load_settings({}).jwt_secret != s.jwt_secret


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
