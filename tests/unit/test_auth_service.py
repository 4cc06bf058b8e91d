"""AuthService.login's rate limits: one e-mail normalisation (the store's case fold) for
the limit and the lookup, and keys that slow guessing without letting a stranger spend
the account holder's budget."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from api.services.auth import AuthService, email_key
from api.services.errors import RateLimited, Unauthenticated
from persistence.store import User, fold


class CountingLimiter:
    """RateLimiter's interface: ``per_minute`` hits per (scope, subject)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.counts: Counter[tuple[str, str]] = Counter()

    async def hit(self, scope: str, subject: str) -> int | None:
        self.counts[scope, subject] += 1
        return 30 if self.counts[scope, subject] > self.per_minute else None


class Store:
    def __init__(self, user: User) -> None:
        self.user = user
        self.looked_up: list[str] = []

    async def get_user_by_email(self, email: str) -> User | None:
        self.looked_up.append(email)
        return self.user if fold(email) == fold(self.user.email) else None


class Passwords:
    async def verify(self, password: str, hashed: str | None) -> bool:
        return hashed is not None and password == "Secret123"


class JwtAuth:
    def create_token(self, identifier: str, token_extras: dict[str, Any]) -> str:
        return f"token-{identifier}"


def _service(per_minute: int = 5) -> tuple[AuthService, CountingLimiter, Store]:
    user = User(
        id="u1", name="A", email="admin@test.com", role="ADMIN", password_hash="h", created_at=0
    )
    limiter, store = CountingLimiter(per_minute), Store(user)
    service = AuthService(store, Passwords(), JwtAuth(), limiter)  # type: ignore[arg-type]
    return service, limiter, store


def test_one_normalisation_for_the_limit_and_the_lookup() -> None:
    assert email_key(" Admin@TEST.com ") == email_key("admin@teﬆ.com") == "admin@test.com"
    service, limiter, store = _service()

    async def run() -> None:
        for variant in ("admin@test.com", "ADMIN@Test.COM", "admin@teﬆ.com", " admin@test.com"):
            with pytest.raises(Unauthenticated):
                await service.login(variant, "wrong", "10.0.0.1")

    asyncio.run(run())
    per_email = [(k, n) for k, n in limiter.counts.items() if k[0] == "login-email"]
    assert per_email == [(("login-email", "admin@test.com 10.0.0.1"), 4)], limiter.counts
    assert set(store.looked_up) == {"admin@test.com"}


def test_a_stranger_spending_the_budget_does_not_lock_out_the_holder() -> None:
    service, _, _ = _service(per_minute=5)

    async def run() -> None:
        for _ in range(5):
            with pytest.raises(Unauthenticated):
                await service.login("admin@test.com", "guess", "203.0.113.7")
        with pytest.raises(RateLimited):  # the guesser is slowed ...
            await service.login("admin@teﬆ.com", "Secret123", "203.0.113.7")
        # ... the holder, from their own address, is not
        session = await service.login("admin@test.com", "Secret123", "198.51.100.2")
        assert session.user.id == "u1"

    asyncio.run(run())


def test_one_address_guessing_many_accounts_is_slowed() -> None:
    service, _, _ = _service(per_minute=5)

    async def run() -> None:
        for i in range(5):
            with pytest.raises(Unauthenticated):
                await service.login(f"user{i}@test.com", "guess", "203.0.113.8")
        with pytest.raises(RateLimited):
            await service.login("other@test.com", "guess", "203.0.113.8")

    asyncio.run(run())
