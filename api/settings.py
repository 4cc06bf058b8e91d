"""The one settings object, built from the environment (and a ``.env`` file) at start-up.

A bad value raises :class:`SettingsError` whose message is one line naming the variable;
the CLI prints it and exits non-zero. Building the settings reads nothing but the
environment and the ``.env`` file (python-dotenv: quotes, ``export`` and inline comments);
:func:`jwt_secret` is the one thing kept on disk (the development secret, DATA_DIR).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"^\d+(b|k|kb|m|mb|g|gb)?$")
DEV_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name, under DATA_DIR)
WEAK_SECRETS = {"your-super-secure-secret-key-change-in-production", "secret", "changeme"}


class SettingsError(ValueError):
    """A configuration variable has a bad value."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "development"
    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 1  # WEB_CONCURRENCY: `onsale serve` workers (load_settings: every core)
    ws_port: int | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    redis_timeout_s: float = 2.0
    mongodb_uri: str | None = None
    data_dir: Path = Path("var")
    jwt_secret: str = field(default="", repr=False)  # "": see jwt_secret() below
    jwt_expires_in: int = 7 * 86400
    reservation_timeout_s: float = 600.0
    low_stock_threshold: float = 0.1
    max_tickets_per_order: int = 10
    hold_extensions: int = 1  # HOLD_EXTENSIONS: extensions a hold may get
    hold_extension_s: float = 300.0  # HOLD_EXTENSION_MINUTES: what each adds
    hold_max_total_s: float = 1200.0  # HOLD_MAX_TOTAL_MINUTES: longest hold since creation
    waitlist_offer_s: float = 300.0  # WAITLIST_OFFER_MINUTES: a waitlist offer's hold
    rate_limit_per_minute: int = 120
    confirm_durability: str = "redis"
    confirm_store_timeout_s: float = 5.0
    log_level: str = "info"
    log_format: str = "text"  # "json" or "text" (api/logs.py)
    access_log: bool = False
    sweep_interval_s: float = 1.0
    admit_interval_s: float = 0.2  # ADMIT_INTERVAL_SECONDS: the admitter's poll while queues exist
    queue_heartbeats_per_minute: int = 60  # QUEUE_HEARTBEATS_PER_MINUTE: per buyer and event
    run_writer: bool = True
    writer_linger_ms: int = 20
    run_expiry: bool = True
    stock_gate: bool = True  # STOCK_GATE: sold-out refusals from the feed, no Redis
    hot_hold: bool = True  # HOT_HOLD: the lean ASGI hold in front of Litestar (api/hot_hold.py)
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
    events_per_hour: int = 30  # events an organizer may create per hour (0: no limit)
    ws_max_per_user: int = 20  # real-time sockets per user, per process (0: no limit)
    ws_max_per_address: int = 200  # real-time sockets per client address, per process
    ws_max_streams: int = 5000  # feed streams one process tails (events watched)
    metrics_token: str = field(default="", repr=False)  # per-event /metrics series
    metrics_port: int | None = None  # METRICS_PORT: `onsale writer`/`sweeper` /metrics
    run_webhooks: bool = True  # the webhook dispatcher inside `onsale serve`
    webhook_allow_private: bool = False  # production: allow private/loopback receivers
    webhook_timeout_s: float = 10.0  # one attempt: a 2xx within this is a success
    webhook_retry_hours: float = 24.0  # retried this long after creation, then FAILED
    webhook_retry_base_s: float = 5.0  # first retry delay, doubling (with jitter)
    webhook_retry_max_s: float = 3600.0  # cap of one retry delay
    webhook_concurrency: int = 32  # attempts in flight per dispatcher process
    webhook_per_endpoint: int = 8  # attempts in flight per endpoint
    webhook_disable_failures: int = 20  # consecutive failures that may disable ...
    webhook_disable_hours: float = 24.0  # ... once failing at least this long

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def hold_ttl_ms(self) -> int:
        return max(1, round(self.reservation_timeout_s * 1000))


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file, read by python-dotenv (comments, inline comments
    after an unquoted value, quotes, ``export``); no ``${VAR}`` expansion, so a secret
    with a ``$`` is read as written."""
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False, encoding="utf-8")
    return {key: value for key, value in values.items() if value is not None}


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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under ``taskset`` or a
    container's cpuset), else every core: ``onsale serve``'s default worker count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    return _int(env, name, 0, 1, 65535) if env.get(name, "").strip() else None


def _metrics_token(env: Mapping[str, str]) -> str:
    token = env.get("METRICS_TOKEN", "").strip()
    if token and len(token.encode()) < 16:
        raise SettingsError("METRICS_TOKEN: at least 16 bytes")
    return token


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Settings from ``environ`` (default: os.environ) over ``dotenv`` (default: ./.env
    when ``environ`` is not given; no file when it is, unless ``dotenv`` is named)."""
    if environ is None:
        env = read_dotenv(dotenv or Path(".env"))
        env.update(os.environ)
    else:
        env = {**(read_dotenv(dotenv) if dotenv else {}), **environ}
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

    ws_port_raw = env.get("WS_PORT", "").strip()
    ws_port = _int(env, "WS_PORT", 0, 1, 65535) if ws_port_raw else None
    cors = tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip())

    return Settings(
        app_env=app_env,
        host=env.get("HOST", "").strip() or ("0.0.0.0" if app_env == "production" else "127.0.0.1"),
        port=_int(env, "PORT", 3000, 1, 65535),
        workers=_int(env, "WEB_CONCURRENCY", usable_cores(), 1, 1024),
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
        hold_extensions=_int(env, "HOLD_EXTENSIONS", 1, 0, 100),
        hold_extension_s=60 * _float(env, "HOLD_EXTENSION_MINUTES", 5.0, 0.001, 24 * 60),
        hold_max_total_s=60 * _float(env, "HOLD_MAX_TOTAL_MINUTES", 20.0, 0.001, 7 * 24 * 60),
        waitlist_offer_s=60 * _float(env, "WAITLIST_OFFER_MINUTES", 5.0, 0.001, 24 * 60),
        rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 120, 0, 10_000_000),
        confirm_durability=_choice(
            env, "CONFIRM_DURABILITY", "redis", ("redis", "replica", "store")
        ),
        confirm_store_timeout_s=_float(env, "CONFIRM_STORE_TIMEOUT_SECONDS", 5.0, 0.1, 120),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        log_format=_choice(
            env, "LOG_FORMAT", "json" if app_env == "production" else "text", ("json", "text")
        ),
        access_log=_bool(env, "ACCESS_LOG", app_env == "production"),
        sweep_interval_s=_float(env, "SWEEP_INTERVAL_SECONDS", 1.0, 0.05, 3600),
        admit_interval_s=_float(env, "ADMIT_INTERVAL_SECONDS", 0.2, 0.01, 60),
        queue_heartbeats_per_minute=_int(env, "QUEUE_HEARTBEATS_PER_MINUTE", 60, 0, 100_000),
        run_writer=_bool(env, "RUN_WRITER", True),
        writer_linger_ms=_int(env, "WRITER_LINGER_MS", 20, 0, 1000),
        run_expiry=_bool(env, "RUN_EXPIRY", True),
        stock_gate=_bool(env, "STOCK_GATE", True),
        hot_hold=_bool(env, "HOT_HOLD", True),
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
        events_per_hour=_int(env, "EVENTS_PER_HOUR", 30, 0, 1_000_000),
        ws_max_per_user=_int(env, "WS_MAX_PER_USER", 20, 0, 1_000_000),
        ws_max_per_address=_int(env, "WS_MAX_PER_ADDRESS", 200, 0, 10_000_000),
        ws_max_streams=_int(env, "WS_MAX_STREAMS", 5000, 1, 1_000_000),
        metrics_token=_metrics_token(env),
        metrics_port=_optional_port(env, "METRICS_PORT"),
        run_webhooks=_bool(env, "RUN_WEBHOOKS", True),
        webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE", False),
        webhook_timeout_s=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0, 0.05, 60),
        webhook_retry_hours=_float(env, "WEBHOOK_RETRY_HOURS", 24.0, 0.0001, 24 * 30),
        webhook_retry_base_s=_float(env, "WEBHOOK_RETRY_BASE_SECONDS", 5.0, 0.01, 3600),
        webhook_retry_max_s=_float(env, "WEBHOOK_RETRY_MAX_SECONDS", 3600.0, 0.01, 86_400),
        webhook_concurrency=_int(env, "WEBHOOK_CONCURRENCY", 32, 1, 10_000),
        webhook_per_endpoint=_int(env, "WEBHOOK_PER_ENDPOINT", 8, 1, 10_000),
        webhook_disable_failures=_int(env, "WEBHOOK_DISABLE_FAILURES", 20, 1, 1_000_000),
        webhook_disable_hours=_float(env, "WEBHOOK_DISABLE_HOURS", 24.0, 0.0, 24 * 365),
    )


def jwt_secret(settings: Settings) -> str:
    """The HS256 key: ``JWT_SECRET`` when set (always in production), else the development
    secret kept in ``DATA_DIR/jwt-secret`` (mode 0600), generated by the first process that
    needs it, so tokens survive a restart on the same DATA_DIR. Created atomically (written
    aside, then hard-linked into place, which never replaces a file): processes starting
    together all read the one that won."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = settings.data_dir / DEV_SECRET_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        secret = path.read_text().strip()
    except OSError as e:
        raise SettingsError(f"JWT_SECRET: unset, and {path} cannot be used: {e}") from None
    if len(secret.encode()) < 32:
        raise SettingsError(f"JWT_SECRET: unset, and {path} is too short (delete it)")
    return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
