"""Litestar's JWT middleware with a bounded cache of verified tokens.

A token string that verified once verifies again until it expires (HS256 with a fixed key
is deterministic), and during an on-sale each buyer sends the same token for every hold
and confirm. Skipping pyjwt's decode for those requests removes most of the per-request
auth cost; ``exp`` is still checked on every hit.

A valid signature is not enough: the user must still exist. That is looked up in the store
at most once per ``USER_CHECK_TTL_S`` per user and process, so a deleted user's tokens stop
working within that time (at once on routes that read the user anyway, like the profile)
without a store round trip per request. A check about to run out (in its last
``RENEW_AHEAD_S``) is renewed in the background while the request goes on: during a sale
every buyer's check ran out every 5 s on each worker, and each of those holds waited for a
store lookup queued behind the others, which set the sale's p99 (``python -m
loadtest.bench_sale``). A renewal that finds the user gone ends the check at once, and a
check that ran out is still made before the request, so the bound above holds.
"""

from __future__ import annotations

import asyncio
import contextlib
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
RENEW_AHEAD_S = 2.0
# How long a user check waits for others to share its query. Requests of a burst arrive
# spread over many turns of the event loop: with no wait most checks went alone, each a
# hand-off to the store's threads that waited for the GIL behind the loop (136 look-ups
# for 400 new tokens, the burst's first holds 100-240 ms).
BATCH_WINDOW_S = 0.002
_cache: OrderedDict[tuple[str, str], tuple[float, AuthenticationResult]] = OrderedDict()
_users: OrderedDict[str, float] = OrderedDict()  # user id -> known to exist until (monotonic)
_renewing: dict[str, asyncio.Task[bool]] = {}  # user id -> its check running in the background


_asked: dict[str, asyncio.Future[bool]] = {}  # user id -> its answer, for the next look-up


async def _check(store: Any, user_id: str) -> bool:
    """Whether the user exists, asked of the store together with every other check made in
    the same turn of the event loop: one query and one thread hand-off for them all. At the
    start of a sale each worker sees every buyer's token for the first time at once, and
    one look-up each, queued on the store's threads behind the GIL, cost the first holds
    ~100 ms (p99 139 ms cold, 49 ms warm: ``python -m loadtest.bench_sale``)."""
    future = _asked.get(user_id)
    if future is None:
        loop = asyncio.get_running_loop()
        future = _asked[user_id] = loop.create_future()
        if len(_asked) == 1:
            loop.call_later(BATCH_WINDOW_S, _ask, store)
    return await asyncio.shield(future)


def _ask(store: Any) -> None:
    asked = dict(_asked)
    _asked.clear()
    task = asyncio.get_running_loop().create_task(store.existing_user_ids(list(asked)))
    task.add_done_callback(lambda t: _answer(asked, t))


def _answer(asked: dict[str, asyncio.Future[bool]], task: asyncio.Task[set[str]]) -> None:
    error = None if task.cancelled() else task.exception()
    if task.cancelled() or error is not None:
        for future in asked.values():
            if not future.done():
                future.set_exception(error or asyncio.CancelledError())
        return
    found = task.result()
    until = time.monotonic() + USER_CHECK_TTL_S
    for user_id, future in asked.items():
        if user_id in found:
            _users[user_id] = until
            _users.move_to_end(user_id)
        else:
            _users.pop(user_id, None)
        if not future.done():
            future.set_result(user_id in found)
    while len(_users) > MAX_ENTRIES:
        _users.popitem(last=False)


def _known(store: Any, user_id: str) -> bool:
    """True while the user's last check holds; in its last ``RENEW_AHEAD_S`` it is renewed
    in the background (once at a time)."""
    until = _users.get(user_id)
    if until is None:
        return False
    left = until - time.monotonic()
    if left <= 0:
        return False
    if left < RENEW_AHEAD_S and user_id not in _renewing:
        with contextlib.suppress(RuntimeError):  # no running loop: renewed when it runs out
            task = asyncio.get_running_loop().create_task(_check(store, user_id))
            _renewing[user_id] = task
            task.add_done_callback(lambda t: _renewed(user_id, t))
    return True


def _renewed(user_id: str, task: asyncio.Task[bool]) -> None:
    _renewing.pop(user_id, None)
    if not task.cancelled() and task.exception() is not None:
        _users.pop(user_id, None)  # the store failed: the next request checks by itself


async def user_exists(store: Any, user_id: str) -> bool:
    """Whether the user still exists (the store is asked at most once per
    ``USER_CHECK_TTL_S`` per user and process; ahead of time, in the background, for a user
    who keeps calling)."""
    if _known(store, user_id):
        return True
    return await _check(store, user_id)


def cached_result(secret: str, token: str, store: Any) -> AuthenticationResult | None:
    """The result of a token this process verified before and that has not expired, when
    its user's check holds (:func:`user_exists` without waiting): what the middleware
    below would accept without pyjwt or the store. None when either needs a check (the
    lean hold, api/hot_hold.py, then leaves the request to the middleware)."""
    hit = _cache.get((secret, token))
    if hit is None or hit[0] <= time.time():
        return None
    if not _known(store, hit[1].user.id):
        return None
    return hit[1]


NOT_BEARER = "the Authorization scheme must be Bearer: send Authorization: Bearer <token>"


def bearer_token(value: bytes) -> str | None:
    """The token of an ``Authorization`` header value in the ``Bearer`` scheme, else None.

    Only ``Bearer`` authenticates (Litestar's middleware took whatever followed the first
    space, so ``Basic <jwt>`` passed). The scheme is case-insensitive (RFC 7235 section
    2.1: ``bearer``, ``BEARER``) and one or more spaces separate it from the token (RFC 6750
    section 2.1). The lean hold (api/hot_hold.py) reads the header with this too, so both
    take the same requests."""
    scheme, space, token = value.partition(b" ")
    if not space or scheme.lower() != b"bearer":
        return None
    token = token.lstrip(b" ")
    return token.decode("latin-1") if token else None


class CachingJWTAuthenticationMiddleware(JWTAuthenticationMiddleware):
    @cached_property
    def _auth_header_name(self) -> bytes:
        """The header's name as ASGI servers send it (lower-case bytes), built once."""
        return self.auth_header.lower().encode("latin-1")

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """The ``Bearer`` token (:func:`bearer_token`) of the first ``Authorization``
        header, from the raw ASGI header list: ``connection.headers`` builds a Headers
        object of every header for the one lookup (a few percent of a hold). Any other
        scheme is refused as a missing token is (401 ``unauthorized``)."""
        name = self._auth_header_name
        for key, value in connection.scope["headers"]:
            if key == name:
                token = bearer_token(value)
                if token is not None:
                    return await self.authenticate_token(token, connection)
                if value.partition(b" ")[0].lower() != b"bearer":
                    raise NotAuthorizedException(NOT_BEARER)
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
