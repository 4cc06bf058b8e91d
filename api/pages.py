"""The live on-sale web page: ``GET /`` and its static assets.

Plain HTML, CSS and JS (ES modules) from ``api/web/`` with no build step. The page loads
its assets from ``/static/v/<version>/...``, where the version is a hash of every asset:
the modules import each other by relative URL (``./api.js``), so they all carry the
version without a build step or an import map (an inline import map would need
``script-src 'unsafe-inline'``). Versioned assets are cached for a year (``immutable``);
``/`` itself is revalidated, so a deploy is picked up on the next page load. No inline
script or style is used, so the API's Content-Security-Policy (``script-src 'self'``)
applies unchanged. ``/static/<path>`` serves the same files unversioned (the favicon).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.static_files import create_static_files_router

WEB_DIR = Path(__file__).parent / "web"
ASSET_VERSION_MARK = "__ASSET_VERSION__"
ASSET_TYPES = {
    ".css": "text/css",  # Litestar adds "; charset=utf-8" to text types
    ".js": "text/javascript",  # module scripts need a JavaScript MIME type
    ".svg": "image/svg+xml",
}
STATIC_MAX_AGE_S = 3600
IMMUTABLE = "public, max-age=31536000, immutable"


@cache
def assets() -> tuple[str, dict[str, tuple[bytes, str]]]:
    """(version, {relative path: (body, media type)}) of the assets, read once per process."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(WEB_DIR.rglob("*")):
        media = ASSET_TYPES.get(path.suffix)
        # vendor/: the OpenAPI UIs' bundles (MBs), served from disk by /static only.
        if media and path.is_file() and path.relative_to(WEB_DIR).parts[0] != "vendor":
            files[path.relative_to(WEB_DIR).as_posix()] = (path.read_bytes(), media)
    digest = hashlib.sha256()
    for name, (body, _) in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()[:12], files


@cache
def index_html() -> bytes:
    """index.html with the assets' version in their URLs (read once per process)."""
    version, _ = assets()
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    return page.replace(ASSET_VERSION_MARK, version).encode()


@get(
    "/",
    exclude_from_auth=True,
    include_in_schema=False,
    media_type=MediaType.HTML,
    cache_control=CacheControlHeader(no_cache=True),
)
async def index() -> Response[bytes]:
    return Response(index_html(), media_type=MediaType.HTML)


@get("/static/v/{version:str}/{file_path:path}", exclude_from_auth=True, include_in_schema=False)
async def versioned_asset(version: str, file_path: str) -> Response[bytes]:
    """An asset by version. Only files found at start are served (no path from the request
    reaches the file system). A stale version (a page from before a deploy) still gets the
    current file, uncached, rather than a broken page."""
    current, files = assets()
    found = files.get(file_path.lstrip("/"))
    if found is None:
        raise NotFoundException("no such asset")
    body, media = found
    cache_control = IMMUTABLE if version == current else "no-cache"
    return Response(body, media_type=media, headers={"Cache-Control": cache_control})


static_router = create_static_files_router(
    path="/static",
    directories=[WEB_DIR],
    include_in_schema=False,
    opt={"exclude_from_auth": True},
    cache_control=CacheControlHeader(public=True, max_age=STATIC_MAX_AGE_S),
)

WEB_HANDLERS: list[Any] = [index, versioned_asset, static_router]
