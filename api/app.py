"""The Litestar application: routes, auth, errors, security headers, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, post
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api.controllers.admin import AdminController
from api.controllers.auth import AuthController
from api.controllers.events import EventController
from api.controllers.exports import ExportController
from api.controllers.health import HealthController
from api.controllers.orders import OrderController
from api.controllers.queue import QueueController
from api.controllers.waitlist import WaitlistController
from api.controllers.webhooks import WebhookController
from api.errors import EXCEPTION_HANDLERS
from api.headers import secured_send
from api.hot_hold import HotHold, with_hot_hold
from api.http_metrics import request_metrics
from api.logs import REQUEST_ID, request_id_of
from api.openapi import plugins as openapi_plugins
from api.openapi import render_plugins
from api.pages import WEB_HANDLERS
from api.realtime.socketio import mount as mount_socketio
from api.realtime.ws import ws_endpoint
from api.runtime import tune_gc
from api.security import make_jwt_auth
from api.settings import Settings, get_settings
from api.state import build_resources
from api.validation import strict_body


class EchoIn(msgspec.Struct):
    eventoId: str
    tickets: list[dict[str, Any]]


@post("/bench/echo", exclude_from_auth=True, include_in_schema=False, status_code=201)
async def bench_echo(data: EchoIn) -> EchoIn:
    """The bare JSON POST that the HTTP benchmark measures holds against (BENCH_ENDPOINTS)."""
    return data


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    jwt_auth = make_jwt_auth(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = await build_resources(settings, jwt_auth)
        app.state.onsale = resources
        tune_gc()
        try:
            yield
        finally:
            await resources.close()

    app_kwargs: dict[str, Any] = {}
    handlers: list[Any] = [
        AuthController,
        EventController,
        OrderController,
        QueueController,
        WaitlistController,
        AdminController,
        ExportController,
        WebhookController,
        HealthController,
        ws_endpoint,
        *WEB_HANDLERS,
    ]
    if settings.bench_endpoints:
        handlers.append(bench_echo)
    if settings.cors_origins:
        app_kwargs["cors_config"] = CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Admission-Token"],
        )
    return Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        on_app_init=[jwt_auth.on_app_init],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=openapi_plugins(),  # errors, security and headers of every route
        # Litestar's PrometheusConfig series, counted cheaply (api/http_metrics.py).
        middleware=[request_metrics],
        before_request=strict_body,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="onsale",
            version="0.1.0",
            description="Redis-first ticket reservation engine",
            path="/schema",
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
        ),
        debug=False,
        # Logging is set up once per process by api/logs.py (uvicorn's log_config, in every
        # worker); Litestar's default LoggingConfig would dictConfig its own handlers over
        # it. Unhandled errors are logged by api/errors.py.
        logging_config=None,
        **app_kwargs,
    )


def with_security_headers(asgi: Any) -> Any:
    """The Helmet set on every HTTP response of the process: Litestar's, its error
    responses from middleware included, and Socket.IO's own (the long-polling transport and
    its handshake, which python-socketio answers without passing through Litestar).

    An ASGI wrapper around everything rather than Litestar's ``before_send`` hook, which
    wraps the send of WebSocket connections too: every frame to every subscriber paid for a
    hook that only acts on HTTP response starts.

    It also gives each HTTP request its id (api/logs.py: the client's sane
    ``X-Request-Id``, else a new one), kept in a contextvar for every log line of the
    request (uvicorn's access line included) and returned as ``X-Request-Id``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await asgi(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        REQUEST_ID.set(rid)
        await asgi(scope, receive, secured_send(send, scope, rid))

    return app


def app_from_env() -> Any:
    """uvicorn factory entry point (``api.app:app_from_env``): the Litestar app, with
    Socket.IO (python-socketio's ASGI app) in front of it at ``/socket.io/``, and the lean
    hold (api/hot_hold.py, ``HOT_HOLD``) in front of both. The lean hold is also named on
    the returned app (``onsale_hot``), for ``onsale serve``'s HTTP protocol
    (api/hot_http.py), which serves holds below the ASGI layer, and so is Socket.IO's
    shutdown notice (``onsale_shutdown_notice``, api/http_protocol.py)."""
    settings = get_settings()
    app = create_app(settings)
    realtime = mount_socketio(app, settings)
    inner = with_hot_hold(realtime, app, settings)
    outer = with_security_headers(inner)
    if isinstance(inner, HotHold):
        outer.onsale_hot = inner
    # uvicorn's graceful shutdown waits for the requests in flight before the lifespan's
    # shutdown, a parked Socket.IO long-poll included: onsale serve's HTTP protocol calls
    # this as the shutdown begins (api/http_protocol.py).
    outer.onsale_shutdown_notice = realtime.onsale_shutdown_notice
    return outer
