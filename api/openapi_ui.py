"""The pages of the OpenAPI document: Scalar at ``/schema`` (and ``/schema/scalar``),
Swagger UI at ``/schema/swagger``, from packaged files (api/web/vendor/README.md), with no
inline script and no CDN (:func:`render_plugins`).
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin

VENDOR = "/static/vendor"
SWAGGER_UI = f"{VENDOR}/swagger-ui-5.35.0"
SCALAR = f"{VENDOR}/scalar-api-reference-1.76.0"
BOOT_JS = f"{VENDOR}/openapi-ui.js"
PAGE_CSS = f"{VENDOR}/openapi-ui.css"
FAVICON = "<link rel='icon' type='image/svg+xml' href='/static/favicon.svg'>"


def _page(title: str, head: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html><html lang='en'><head>"
        f"<title>{html.escape(title)}</title><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"{FAVICON}<link rel='stylesheet' href='{PAGE_CSS}'>{head}</head>"
        f"<body>{body}<script src='{BOOT_JS}'></script></body></html>"
    ).encode()


class SwaggerUI(SwaggerRenderPlugin):
    """Swagger UI from the packaged bundle, booted by an external script (no inline
    script, no CDN); it loads the document from ``/schema/openapi.json``."""

    def __init__(self, path: str = "/swagger") -> None:
        super().__init__(
            path=path,
            js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_UI}/swagger-ui.css",
            favicon=FAVICON,
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        url = html.escape(self.get_openapi_json_route(request), quote=True)
        return _page(
            f"{openapi_schema['info']['title']} - Swagger UI",
            f"<link rel='stylesheet' href='{self.css_url}'>",
            f"<div id='swagger-ui' data-url='{url}'></div><script src='{self.js_url}'></script>",
        )


class ScalarUI(ScalarRenderPlugin):
    """Scalar from the packaged standalone bundle, booted by an external script."""

    def __init__(self, path: str = "/scalar") -> None:
        super().__init__(
            path=path, js_url=f"{SCALAR}/standalone.js", css_url=PAGE_CSS, favicon=FAVICON
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        url = html.escape(self.get_openapi_json_route(request), quote=True)
        return _page(
            f"{openapi_schema['info']['title']} - API reference",
            "",
            f"<div id='scalar' data-url='{url}'></div><script src='{self.js_url}'></script>",
        )


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Scalar at ``/schema`` (and ``/schema/scalar``), Swagger UI at ``/schema/swagger``."""
    return [ScalarUI(), SwaggerUI()]
