"""api/jwt_cache.py's user check: once per USER_CHECK_TTL_S, renewed ahead of time in the
background for a user who keeps calling, and never past its bound for a deleted user
(the real SQLite store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path

from api import jwt_cache
from api.jwt_cache import RENEW_AHEAD_S, USER_CHECK_TTL_S, user_exists
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
