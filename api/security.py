"""Authentication and authorization: bcrypt off the event loop, Litestar's JWT auth with
the algorithm pinned to HS256, role guards, and a Redis fixed-window rate limiter.

The per-request user is built from the token's claims (id and role): no store round trip
on the hot path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import bcrypt
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from api.jwt_cache import CachingJWTAuthenticationMiddleware, user_exists
from api.metrics import RATE_LIMITED
from api.settings import Settings, jwt_secret
from engine.core import Engine
from engine.vocabulary import ROLES, Role

T = TypeVar("T")
MAX_PASSWORD_BYTES = 72
PASSWORD_POLICY = "password must be at least 8 characters with letters and digits"  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from the verified token alone."""

    id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class PasswordsBusy(Exception):
    """More bcrypt work is queued than the pool finishes in a reasonable time."""


class Passwords:
    """bcrypt hashing in a bounded thread pool, never on the event loop.

    The queue in front of the pool is bounded too: during a login storm, work past
    ``max_queue`` is refused at once (the API answers 503 with Retry-After) rather than
    queued for longer than any client would wait."""

    def __init__(self, rounds: int, threads: int, max_queue: int = 256) -> None:
        self.rounds = rounds
        self.max_queue = max_queue
        self.queued = 0
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bcrypt")
        # Compared against when the e-mail is unknown, so both answers take as long.
        self._dummy = bcrypt.hashpw(b"onsale-dummy", bcrypt.gensalt(rounds)).decode()

    async def _run(self, work: Callable[[], T]) -> T:
        if self.queued >= self.max_queue:
            raise PasswordsBusy(f"{self.queued} password checks already waiting")
        self.queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, work)
        finally:
            self.queued -= 1

    async def hash(self, password: str) -> str:
        raw = password.encode()
        hashed = await self._run(lambda: bcrypt.hashpw(raw, bcrypt.gensalt(self.rounds)))
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        raw = password.encode()
        if len(raw) > MAX_PASSWORD_BYTES:
            return False
        target = (hashed or self._dummy).encode()
        ok = await self._run(lambda: bcrypt.checkpw(raw, target))
        return ok and hashed is not None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def password_problems(password: Any) -> str | None:
    """The password policy: 8 to 72 bytes, letters and digits."""
    if not isinstance(password, str):
        return None  # a type error, reported as such
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return "password must be at most 72 bytes (bcrypt ignores the rest)"
    letters = any(c.isalpha() for c in password)
    digits = any(c.isdigit() for c in password)
    if len(password) < 8 or not letters or not digits:
        return PASSWORD_POLICY
    return None


async def retrieve_principal(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    role = token.extras.get("role")
    if role not in ROLES or not token.sub:
        raise NotAuthorizedException("invalid token")
    return Principal(id=token.sub, role=role)


PUBLIC_PATHS = [
    "^/$",
    "^/schema",
    "^/health",
    "^/metrics",
    "^/ws",
    "^/static",
    "^/api/auth/login",
    "^/api/auth/register",
]


def make_jwt_auth(settings: Settings) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        retrieve_user_handler=retrieve_principal,
        token_secret=jwt_secret(settings),
        algorithm="HS256",
        default_token_expiration=timedelta(seconds=settings.jwt_expires_in),
        exclude=PUBLIC_PATHS,
        require_claims=["exp", "iat", "sub"],
        verify_expiry=True,
        authentication_middleware_class=CachingJWTAuthenticationMiddleware,
    )


async def verify_token(auth: JWTAuth[Principal, Token], raw: str, store: Any) -> Principal | None:
    """The principal of a raw token (WebSocket ``auth`` / ``?token=``), None if invalid
    or if its user no longer exists."""
    try:
        token = auth.token_cls.decode(
            encoded_token=raw,
            secret=auth.token_secret,
            algorithm=auth.algorithm,
            require_claims=auth.require_claims,
            verify_exp=True,
        )
        principal = await retrieve_principal(token, None)  # type: ignore[arg-type]
    except (NotAuthorizedException, ValueError, TypeError):
        return None
    return principal if await user_exists(store, principal.id) else None


def issue_token(auth: JWTAuth[Principal, Token], user_id: str, role: str) -> str:
    return auth.create_token(identifier=user_id, token_extras={"role": role})


# -- guards ------------------------------------------------------------------------------


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("authentication required")
    return user


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not principal_of(connection).is_admin:
        raise PermissionDeniedException("requires role ADMIN")


def organizer_or_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if principal_of(connection).role not in (Role.ADMIN, Role.ORGANIZER):
        raise PermissionDeniedException("requires role ORGANIZADOR or ADMIN")


# -- rate limiting -----------------------------------------------------------------------


class RateLimiter:
    """Fixed windows (one minute unless ``window_s`` says otherwise) counted in Redis (one
    INCR script, batched with the engine's other calls), so the limit holds across every
    API process (Litestar's RateLimitMiddleware reads then writes its store, which lets
    concurrent requests on several workers through, and keys only by address).
    ``per_minute`` is the hits allowed per window; 0 is no limit."""

    def __init__(self, engine: Engine, per_minute: int, window_s: int = 60) -> None:
        self.engine = engine
        self.per_minute = per_minute
        self.window_s = window_s

    async def hit(self, scope: str, subject: str) -> int | None:
        """None when allowed, else seconds until the window resets."""
        if self.per_minute <= 0:
            return None
        now = time.time()
        window = self.window_s
        count = await self.engine.count_hit(scope, subject, int(now // window), 2 * window)
        if count > self.per_minute:
            RATE_LIMITED.labels(scope).inc()
            return max(1, int(window - now % window))
        return None
