"""Litestar's JWT middleware with a bounded cache of verified tokens.

A token string that verified once verifies again until it expires (HS256 with a fixed key
is deterministic), and during an on-sale each buyer sends the same token for every hold
and confirm. Skipping pyjwt's decode for those requests removes most of the per-request
auth cost; ``exp`` is still checked on every hit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuthenticationMiddleware

MAX_ENTRIES = 100_000
_cache: OrderedDict[tuple[str, str], tuple[float, AuthenticationResult]] = OrderedDict()


class CachingJWTAuthenticationMiddleware(JWTAuthenticationMiddleware):
    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        key = (self.token_secret, encoded_token)
        hit = _cache.get(key)
        if hit is not None:
            if hit[0] > time.time():
                return hit[1]
            _cache.pop(key, None)
        result = await super().authenticate_token(encoded_token, connection)
        _cache[key] = (result.auth.exp.timestamp(), result)
        if len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
        return result
