"""Litestar's JWT middleware with a bounded cache of verified tokens.

A token string that verified once verifies again until it expires (HS256 with a fixed key
is deterministic), and during an on-sale each buyer sends the same token for every hold
and confirm. Skipping pyjwt's decode for those requests removes most of the per-request
auth cost; ``exp`` is still checked on every hit.

A valid signature is not enough: the user must still exist. That is looked up in the store
at most once per ``USER_CHECK_TTL_S`` per user and process, so a deleted user's tokens stop
working within that time (at once on routes that read the user anyway, like the profile)
without a store round trip per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from functools import cached_property
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuthenticationMiddleware

MAX_ENTRIES = 100_000
USER_CHECK_TTL_S = 5.0
_cache: OrderedDict[tuple[str, str], tuple[float, AuthenticationResult]] = OrderedDict()
_users: OrderedDict[str, float] = OrderedDict()  # user id -> known to exist until (monotonic)


async def user_exists(store: Any, user_id: str) -> bool:
    """Whether the user still exists (the store is asked at most once per
    ``USER_CHECK_TTL_S`` per user and process)."""
    now = time.monotonic()
    until = _users.get(user_id)
    if until is not None and until > now:
        return True
    exists = await store.get_user(user_id) is not None
    if exists:
        _users[user_id] = now + USER_CHECK_TTL_S
        _users.move_to_end(user_id)
        if len(_users) > MAX_ENTRIES:
            _users.popitem(last=False)
    else:
        _users.pop(user_id, None)
    return bool(exists)


def cached_result(secret: str, token: str) -> AuthenticationResult | None:
    """The result of a token this process verified before and that has not expired, when
    its user was also found in the store within ``USER_CHECK_TTL_S``: what the middleware
    below would accept without pyjwt or the store. None when either needs a check (the
    lean hold, api/hot_hold.py, then leaves the request to the middleware)."""
    hit = _cache.get((secret, token))
    if hit is None or hit[0] <= time.time():
        return None
    until = _users.get(hit[1].user.id)
    if until is None or until <= time.monotonic():
        return None
    return hit[1]


class CachingJWTAuthenticationMiddleware(JWTAuthenticationMiddleware):
    @cached_property
    def _auth_header_name(self) -> bytes:
        """The header's name as ASGI servers send it (lower-case bytes), built once."""
        return self.auth_header.lower().encode("latin-1")

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """The token from the raw ASGI header list: ``connection.headers`` builds a
        Headers object of every header for the one lookup (a few percent of a hold)."""
        name = self._auth_header_name
        for key, value in connection.scope["headers"]:
            if key == name:
                token = value.decode("latin-1").partition(" ")[-1]
                if token:
                    return await self.authenticate_token(token, connection)
                break
        raise NotAuthorizedException("No JWT token found in request header")

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = (self.token_secret, encoded_token)
        hit = _cache.get(key)
        result = None
        if hit is not None:
            if hit[0] > time.time():
                result = hit[1]
            else:
                _cache.pop(key, None)
        if result is None:
            result = await super().authenticate_token(encoded_token, connection)
            _cache[key] = (result.auth.exp.timestamp(), result)
            if len(_cache) > MAX_ENTRIES:
                _cache.popitem(last=False)
        if not await user_exists(connection.app.state["onsale"].store, result.user.id):
            _cache.pop(key, None)
            raise NotAuthorizedException("the account no longer exists")
        return result
