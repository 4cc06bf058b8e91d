"""The account rules: self-registration (no self-made ADMIN, the password policy, one
account per e-mail), login without revealing which e-mails exist, and rate limits.

Login is limited per client address, and per e-mail *and* address: guessing one
account's password is slowed, yet a stranger spending an account's budget from elsewhere
does not lock its holder out. E-mails are compared in one form everywhere,
:func:`email_key` (the store's ``fold``), so ``Admin@teﬆ.com`` has no budget of its own."""

from __future__ import annotations

import time
from typing import NamedTuple

from litestar.security.jwt import JWTAuth, Token

from api.schemas import RegisterIn
from api.security import Passwords, Principal, RateLimiter, issue_token, password_problems
from api.services.errors import Conflict, Forbidden, Invalid, RateLimited, Unauthenticated
from engine.models import new_id
from engine.vocabulary import Role
from persistence.aio import AsyncStore
from persistence.errors import DuplicateEmail
from persistence.store import User, fold


class Session(NamedTuple):
    token: str
    user: User


def email_key(email: str) -> str:
    """The one comparison form of an e-mail: the store's lookup key (case-folded)."""
    return fold(email.strip())


def _duplicate() -> Conflict:
    return Conflict("e-mail already registered", code="duplicate_email")


class AuthService:
    def __init__(
        self,
        store: AsyncStore,
        passwords: Passwords,
        jwt_auth: JWTAuth[Principal, Token],
        limiter: RateLimiter,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.jwt_auth = jwt_auth
        self.limiter = limiter

    async def _limit(self, scope: str, subject: str) -> None:
        retry_after = await self.limiter.hit(scope, subject)
        if retry_after is not None:
            raise RateLimited(retry_after)

    def _session(self, user: User) -> Session:
        return Session(issue_token(self.jwt_auth, user.id, user.role), user)

    async def register(self, data: RegisterIn, client: str) -> Session:
        await self._limit("register", client)
        if data.role == Role.ADMIN:
            raise Forbidden("the ADMIN role cannot be self-assigned", code="role_forbidden")
        problem = password_problems(data.password)
        if problem:
            raise Invalid(problem, code="weak_password", fields={"password": problem})
        email = data.email.strip().lower()
        if await self.store.get_user_by_email(email) is not None:
            raise _duplicate()
        user = User(
            id=new_id(),
            name=data.nombre.strip(),
            email=email,
            role=data.role,
            password_hash=await self.passwords.hash(data.password),
            created_at=int(time.time() * 1000),
        )
        try:
            await self.store.create_user(user)
        except DuplicateEmail:
            raise _duplicate() from None
        return self._session(user)

    async def login(self, email: str, password: str, client: str) -> Session:
        key = email_key(email)
        await self._limit("login", client)
        await self._limit("login-email", f"{key} {client}")
        user = await self.store.get_user_by_email(key)
        ok = await self.passwords.verify(password, user.password_hash if user else None)
        if not ok or user is None:
            raise Unauthenticated("invalid e-mail or password", code="bad_credentials")
        return self._session(user)

    async def profile(self, who: Principal) -> User:
        user = await self.store.get_user(who.id)
        if user is None:
            raise Unauthenticated("the account no longer exists", code="unknown_user")
        return user
