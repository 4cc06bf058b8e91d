"""The live on-sale web page: ``GET /`` and its static assets under ``/static``.

Plain HTML, CSS and JS from ``api/web/`` with no build step. The page's asset URLs carry a
content hash (``?v=...``), so the assets may be cached while ``/`` itself is revalidated:
a changed ``app.js`` is picked up on the next page load. No inline script or style is used,
so the API's Content-Security-Policy (``script-src 'self'``) applies unchanged.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router

WEB_DIR = Path(__file__).parent / "web"
ASSET_VERSION_MARK = "__ASSET_VERSION__"
VERSIONED_ASSETS = ("app.css", "app.js")
STATIC_MAX_AGE_S = 3600


@cache
def index_html() -> bytes:
    """index.html with the assets' content hash in their URLs (read once per process)."""
    digest = hashlib.sha256()
    for name in VERSIONED_ASSETS:
        digest.update((WEB_DIR / name).read_bytes())
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    return page.replace(ASSET_VERSION_MARK, digest.hexdigest()[:12]).encode()


@get(
    "/",
    exclude_from_auth=True,
    include_in_schema=False,
    media_type=MediaType.HTML,
    cache_control=CacheControlHeader(no_cache=True),
)
async def index() -> Response[bytes]:
    return Response(index_html(), media_type=MediaType.HTML)


static_router = create_static_files_router(
    path="/static",
    directories=[WEB_DIR],
    include_in_schema=False,
    opt={"exclude_from_auth": True},
    cache_control=CacheControlHeader(public=True, max_age=STATIC_MAX_AGE_S),
)

WEB_HANDLERS: list[Any] = [index, static_router]
