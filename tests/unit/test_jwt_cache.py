"""api/jwt_cache.py's user check: once per USER_CHECK_TTL_S, renewed ahead of time in the
background for a user who keeps calling, and never past its bound for a deleted user
(the real SQLite store); and the ``Authorization`` header: only the ``Bearer`` scheme."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException

from api import jwt_cache
from api.jwt_cache import (
    NOT_BEARER,
    RENEW_AHEAD_S,
    USER_CHECK_TTL_S,
    CachingJWTAuthenticationMiddleware,
    bearer_token,
    user_exists,
)
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.store import User


class Counting(AsyncStore):
    """The real store, counting the user look-ups."""

    looked = 0

    async def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        self.looked += 1
        return await super().existing_user_ids(user_ids)


async def test_renewed_ahead_in_the_background_and_a_deleted_user_is_dropped(
    tmp_path: Path,
) -> None:
    store = Counting(SQLiteStore(tmp_path / "s.db"))
    user = User(id="u-jwt", name="A", email="a@x.test", role="COMPRADOR", password_hash="h",
                created_at=1)  # fmt: skip
    await store.create_user(user)
    try:
        assert await user_exists(store, user.id) and store.looked == 1
        assert await user_exists(store, user.id) and store.looked == 1  # within the TTL

        # In the last RENEW_AHEAD_S: answered at once, renewed in the background.
        jwt_cache._users[user.id] = time.monotonic() + RENEW_AHEAD_S / 2
        assert await user_exists(store, user.id) and store.looked == 1
        assert user.id in jwt_cache._renewing
        await asyncio.sleep(0.2)
        assert user.id not in jwt_cache._renewing and store.looked == 2
        assert jwt_cache._users[user.id] > time.monotonic() + USER_CHECK_TTL_S - 1

        # Deleted: the next renewal drops the user, and the request after it is refused.
        assert await store.delete_user(user.id)
        jwt_cache._users[user.id] = time.monotonic() + RENEW_AHEAD_S / 2
        assert await user_exists(store, user.id)  # the check still holds, for < RENEW_AHEAD_S
        await asyncio.sleep(0.2)
        assert user.id not in jwt_cache._users
        assert not await user_exists(store, user.id)

        # A check that ran out is made before the answer, never after it.
        await store.create_user(user)
        jwt_cache._users[user.id] = time.monotonic() - 0.01
        await store.delete_user(user.id)
        looked = store.looked
        assert not await user_exists(store, user.id) and store.looked == looked + 1
    finally:
        jwt_cache._users.pop(user.id, None)
        await store.close()


async def test_checks_made_together_are_one_look_up(tmp_path: Path) -> None:
    store = Counting(SQLiteStore(tmp_path / "s.db"))
    ids = [f"u-batch-{i}" for i in range(50)]
    for i, user_id in enumerate(ids[:40]):
        await store.create_user(
            User(
                id=user_id,
                name="B",
                email=f"b{i}@x.test",
                role="COMPRADOR",
                password_hash="h",
                created_at=1,
            )
        )
    try:
        answers = await asyncio.gather(*(user_exists(store, u) for u in [*ids, *ids[:5]]))
        assert answers == [True] * 40 + [False] * 10 + [True] * 5
        assert store.looked == 1  # 55 checks of 50 users, one query
    finally:
        for user_id in ids:
            jwt_cache._users.pop(user_id, None)
        await store.close()


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (b"Bearer a.b.c", "a.b.c"),
        (b"bearer a.b.c", "a.b.c"),
        (b"BEARER a.b.c", "a.b.c"),
        (b"BeArEr a.b.c", "a.b.c"),
        (b"Bearer   a.b.c", "a.b.c"),  # RFC 6750: 1*SP
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"Bearer    ", None),
        (b"Basic a.b.c", None),
        (b"basic a.b.c", None),
        (b"Foo a.b.c", None),
        (b"Bearerx a.b.c", None),
        (b"Bearer,a.b.c", None),
        (b"Bearer\ta.b.c", None),
        (b" Bearer a.b.c", None),
        (b"a.b.c", None),
        (b"", None),
    ],
)
def test_bearer_token(value: bytes, token: str | None) -> None:
    assert bearer_token(value) == token


class _Middleware(CachingJWTAuthenticationMiddleware):
    """The middleware's header parsing alone: the token it would verify is returned."""

    def __init__(self) -> None:
        self.auth_header = "Authorization"

    async def authenticate_token(self, encoded_token: str, connection: Any) -> Any:
        return encoded_token


def _authenticate(*headers: tuple[bytes, bytes]) -> Any:
    connection = SimpleNamespace(scope={"headers": list(headers)})
    return asyncio.run(_Middleware().authenticate_request(connection))  # type: ignore[arg-type]


def test_only_the_bearer_scheme_reaches_the_token_check() -> None:
    assert _authenticate((b"authorization", b"bearer t.o.k")) == "t.o.k"
    assert _authenticate((b"host", b"x"), (b"authorization", b"BEARER  t.o.k")) == "t.o.k"
    for value in (b"Basic t.o.k", b"Foo t.o.k", b"Token t.o.k", b"t.o.k"):
        with pytest.raises(NotAuthorizedException) as refused:
            _authenticate((b"authorization", value))
        assert refused.value.detail == NOT_BEARER
    for headers in ([], [(b"authorization", b"Bearer")], [(b"authorization", b"bearer ")]):
        with pytest.raises(NotAuthorizedException) as missing:
            _authenticate(*headers)
        assert missing.value.detail == "No JWT token found in request header"
    # the first header counts, as Litestar reads it
    with pytest.raises(NotAuthorizedException):
        _authenticate((b"authorization", b"Basic x"), (b"authorization", b"Bearer t.o.k"))
