"""The one settings object, built from the environment (and a ``.env`` file) at start-up.

A bad value raises :class:`SettingsError` whose message is one line naming the variable;
the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"^\d+(b|k|kb|m|mb|g|gb)?$")
WEAK_SECRETS = {"your-super-secure-secret-key-change-in-production", "secret", "changeme"}


class SettingsError(ValueError):
    """A configuration variable has a bad value."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    host: str = "127.0.0.1"
    port: int = 3000
    ws_port: int | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_timeout_s: float = 2.0
    mongodb_uri: str | None = None
    data_dir: Path = Path("var")
    jwt_secret: str = field(default="", repr=False)
    jwt_expires_in: int = 7 * 86400
    reservation_timeout_s: float = 600.0
    low_stock_threshold: float = 0.1
    max_tickets_per_order: int = 10
    rate_limit_per_minute: int = 120
    confirm_durability: str = "redis"
    confirm_store_timeout_s: float = 5.0
    log_level: str = "info"
    sweep_interval_s: float = 1.0
    run_writer: bool = True
    writer_linger_ms: int = 20
    run_expiry: bool = True
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    bcrypt_rounds: int = 12
    bcrypt_threads: int = 2
    bcrypt_max_queue: int = 256
    bench_endpoints: bool = False
    trusted_proxies: str = ""
    redis_maxmemory: str = "1gb"  # the embedded redis-server's maxmemory ("0": no limit)
    idempotency_ttl_s: int = 86_400
    order_retention_s: float = 600.0

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def hold_ttl_ms(self) -> int:
        return max(1, round(self.reservation_timeout_s * 1000))


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, blank lines and quotes handled)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def parse_duration(name: str, raw: str) -> int:
    raw = raw.strip()
    if raw.isdigit():
        return int(raw)
    m = _DURATION.match(raw)
    if not m or int(m.group(1)) <= 0:
        raise SettingsError(f"{name}={raw!r}: expected a duration like 15m, 12h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={raw!r}: expected an integer from {lo} to {hi}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not lo <= value <= hi or value != value:
        raise SettingsError(f"{name}={raw!r}: expected a number from {lo} to {hi}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _memory(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if not _MEMORY.match(value):
        raise SettingsError(f"{name}={value!r}: expected a size like 512mb or 1gb (0: no limit)")
    return value


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Settings from ``environ`` (default: os.environ over ./.env)."""
    if environ is None:
        env = read_dotenv(dotenv or Path(".env"))
        env.update(os.environ)
    else:
        env = dict(environ)
    app_env = _choice(env, "APP_ENV", "development", ("development", "test", "production"))

    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"REDIS_URL={redis_url!r}: expected a redis:// or rediss:// URL")
    mongodb_uri = env.get("MONGODB_URI", "").strip() or None
    if mongodb_uri and not mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
        raise SettingsError("MONGODB_URI: expected a mongodb:// or mongodb+srv:// URI")

    secret = env.get("JWT_SECRET", "")
    if app_env == "production":
        if not secret:
            raise SettingsError("JWT_SECRET: required when APP_ENV=production")
        if len(secret.encode()) < 32 or secret in WEAK_SECRETS:
            raise SettingsError("JWT_SECRET: too weak for production (>= 32 bytes, not a default)")
    elif secret and len(secret.encode()) < 16:
        raise SettingsError("JWT_SECRET: at least 16 bytes (32 required in production)")
    if not secret:
        secret = secrets.token_urlsafe(48)

    ws_port_raw = env.get("WS_PORT", "").strip()
    ws_port = _int(env, "WS_PORT", 0, 1, 65535) if ws_port_raw else None
    cors = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())

    return Settings(
        app_env=app_env,
        host=env.get("HOST", "").strip() or ("0.0.0.0" if app_env == "production" else "127.0.0.1"),
        port=_int(env, "PORT", 3000, 1, 65535),
        ws_port=ws_port,
        redis_url=redis_url,
        redis_cluster=_bool(env, "REDIS_CLUSTER", False),
        redis_timeout_s=_float(env, "REDIS_TIMEOUT_S", 2.0, 0.05, 600),
        mongodb_uri=mongodb_uri,
        data_dir=Path(env.get("DATA_DIR", "").strip() or "var"),
        jwt_secret=secret,
        jwt_expires_in=parse_duration("JWT_EXPIRES_IN", env.get("JWT_EXPIRES_IN", "") or "7d"),
        reservation_timeout_s=60
        * _float(env, "ORDER_RESERVATION_TIMEOUT_MINUTES", 10.0, 0.001, 24 * 60),
        low_stock_threshold=_float(env, "LOW_STOCK_THRESHOLD", 0.1, 0.0, 1_000_000),
        max_tickets_per_order=_int(env, "MAX_TICKETS_PER_ORDER", 10, 1, 1000),
        rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 120, 0, 10_000_000),
        confirm_durability=_choice(
            env, "CONFIRM_DURABILITY", "redis", ("redis", "replica", "store")
        ),
        confirm_store_timeout_s=_float(env, "CONFIRM_STORE_TIMEOUT_SECONDS", 5.0, 0.1, 120),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        sweep_interval_s=_float(env, "SWEEP_INTERVAL_SECONDS", 1.0, 0.05, 3600),
        run_writer=_bool(env, "RUN_WRITER", True),
        writer_linger_ms=_int(env, "WRITER_LINGER_MS", 20, 0, 1000),
        run_expiry=_bool(env, "RUN_EXPIRY", True),
        cors_origins=cors,
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", 12, 4, 16)
        if app_env != "production"
        else max(12, _int(env, "BCRYPT_ROUNDS", 12, 4, 16)),
        bcrypt_threads=_int(env, "BCRYPT_THREADS", 2, 1, 64),
        bcrypt_max_queue=_int(env, "BCRYPT_MAX_QUEUE", 256, 1, 100_000),
        bench_endpoints=_bool(env, "BENCH_ENDPOINTS", False) and app_env != "production",
        trusted_proxies=env.get("TRUSTED_PROXIES", "").strip(),
        redis_maxmemory=_memory(env, "REDIS_MAXMEMORY", "1gb"),
        idempotency_ttl_s=3600 * _int(env, "IDEMPOTENCY_TTL_HOURS", 24, 1, 24 * 365),
        order_retention_s=60 * _float(env, "ORDER_RETENTION_MINUTES", 10.0, 0.001, 7 * 24 * 60),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
