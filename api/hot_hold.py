"""The hold (``POST /api/orders``) as a lean ASGI handler in front of Litestar.

Litestar's route handling of a hold (routing, the JWT middleware's connection object, the
``before_request`` hook's ``Request``, the signature model, the kwargs, four send wrappers)
was about a quarter of a hold's CPU (docs/performance.md). This handler serves the holds
whose request has the one shape every buyer's client sends, and hands every other request,
unchanged, to the app behind it:

* ``POST`` to ``/api/orders`` or ``/api/orders/`` (any query string, no ``root_path``),
  a valid ``Host`` header;
* ``Authorization: Bearer <token>`` (the scheme in any case, as the JWT middleware reads
  it: api/jwt_cache.py ``bearer_token``) that the JWT middleware's cache already accepts, with
  its user seen in the store within ``USER_CHECK_TTL_S`` (api/jwt_cache.py
  ``cached_result``); a token this process has not seen yet is verified by an instance of
  the same middleware (pyjwt, the user check batched with the others of the moment), and
  any refusal of it is left to Litestar (its 401 is Litestar's own);
* a JSON content type (``application/json`` or ``application/*+json``, the rule
  ``strict_body`` applies: api/validation.py ``is_json_media_type``), a body within
  ``MAX_BODY_BYTES`` that decodes into ``OrderIn`` with the strict decoder ``strict_body``
  uses;
* ``Idempotency-Key`` and ``Admission-Token`` each absent or sent once, not empty, the
  token within the route's 128 characters.

Anything else (no token, a token refused, another content type, a body that is not
JSON, has unknown or wrongly typed fields or is too large) goes to Litestar with the body
already read replayed through a new ``receive``, so its answer is Litestar's own, byte for
byte. A request of the happy shape is answered by the route's own implementation
(api/controllers/orders.py ``hold_response``: the same ``OrderService.hold``, so the same
rate limit, stock gate, idempotency and admission token, and the same pre-encoded 201 or
refusal); anything else it raises is answered by the route's exception handlers
(api/errors.py) through Litestar's own response classes, as its exception middleware does.
The request series of api/http_metrics.py are counted with the route's template, and the
scope gets what Litestar's router and JWT middleware put there. Security headers and
``X-Request-Id`` come from the wrapper outside (api/app.py). Under ``onsale serve`` the
HTTP protocol starts :meth:`HotHold.hold` itself, with the body it has parsed and a
writer for the pre-encoded answers (api/hot_http.py), below that wrapper.

``onsale_hot_hold_requests_total{outcome}`` counts the holds served here (``served``) and
those handed to Litestar (``litestar``). ``HOT_HOLD=false`` turns it off (so does
``CORS_ORIGINS``: the CORS middleware's headers are Litestar's).
tests/integration/test_hot_hold_differential.py sends every case of the contract tests to
a server with it and one without, and compares status, headers and body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from prometheus_client import Counter

from api.controllers.orders import hold_response
from api.http_metrics import finished, in_progress
from api.jwt_cache import bearer_token, cached_result
from api.litestar_seam import get_exception_handler, is_valid_host
from api.present import EncodedJSON
from api.schemas import OrderIn
from api.settings import Settings
from api.validation import is_json_media_type, strict_decoder

log = logging.getLogger(__name__)

HOLD_PATH = "/api/orders"
HOLD_PATHS = frozenset({HOLD_PATH, HOLD_PATH + "/"})
_MAX_ADMISSION_TOKEN = 128  # the route's Parameter(max_length=128)

HOT_HOLD = Counter(
    "onsale_hot_hold_requests",
    "Holds (POST /api/orders) served by the lean handler (served) or handed to Litestar",
    ["outcome"],
)
_SERVED = HOT_HOLD.labels("served")
_HANDED = HOT_HOLD.labels("litestar")
_decode = strict_decoder(OrderIn).decode


# How a server writes a pre-encoded answer itself: True when it did (api/hot_http.py).
Direct = Callable[[EncodedJSON], bool]


class HotHold:
    """The ASGI app: ``inner`` (Socket.IO in front of Litestar) with the hold in front."""

    def __init__(self, inner: Any, app: Litestar, settings: Settings) -> None:
        self.inner = inner
        self.app = app
        self.max_body = settings.max_body_bytes
        # The route as Litestar's router resolves it: its template (the metrics' ``path``
        # label), its exception handlers and type encoders.
        _, handler, _, _, template = app.asgi_router.handle_routing(path=HOLD_PATH, method="POST")
        if getattr(handler.fn, "__name__", "") != "create_order":
            raise RuntimeError(f"POST {HOLD_PATH} is not the hold route: {handler}")
        self.handler = handler
        self.template = template
        self.exception_handlers = handler.resolve_exception_handlers()
        self.type_encoders = handler.resolve_type_encoders()
        self.progress = in_progress("POST", template)
        self._auth: Any = None  # the JWT middleware, built once the resources exist

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in HOLD_PATHS:
            await self.hold(scope, receive, send)
            return
        await self.inner(scope, receive, send)

    async def hold(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        body: bytes | None = None,
        direct: Direct | None = None,
    ) -> None:
        """Serve the hold ``scope`` asks for, or hand it to the app behind. ``body``: the
        whole body when the server has it already (else it is received); ``direct``: how
        the server writes an :class:`EncodedJSON` answer itself (api/hot_http.py), else
        every answer goes through ``send``."""
        start = time.perf_counter()
        received: list[Any] = []
        found = None if scope.get("root_path") else self._shape(scope)
        if found is not None:
            if body is None:
                body = await self._body(receive, received)
            elif len(body) > self.max_body:
                body = None
            data = _order_in(body)
            auth = found[0]
            if data is not None and isinstance(auth, str):  # not cached: verify it here
                auth = await self._verify(scope, auth)
            if data is not None and auth is not None:
                _SERVED.inc()
                await self._serve(scope, receive, send, start, data, auth, *found[1:], direct)
                return
        _HANDED.inc()
        await self.inner(scope, _replay(received, receive) if received else receive, send)

    def _shape(self, scope: Any) -> tuple[Any, str | None, str | None] | None:
        """The cached auth result (or the token, when it is not cached) and the two
        optional headers of a request of the happy shape (its body aside), else None."""
        auth = content_type = host = length = idempotency = admission = None
        repeated = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                if auth is None:  # the JWT middleware reads the first
                    auth = value
            elif name == b"content-type":
                repeated |= content_type is not None
                content_type = value
            elif name == b"content-length":
                repeated |= length is not None
                length = value
            elif name == b"host":
                if host is None:  # Litestar's router checks the first
                    host = value
            elif name == b"idempotency-key":
                repeated |= idempotency is not None
                idempotency = value
            elif name == b"admission-token":
                repeated |= admission is not None
                admission = value
        if repeated or auth is None or not is_json_media_type(content_type):
            return None
        token = bearer_token(auth)
        if token is None:
            return None
        if host is not None and not is_valid_host(host):
            return None
        if length is not None and not (length.isdigit() and int(length) <= self.max_body):
            return None
        if idempotency == b"" or admission == b"":
            return None
        if admission is not None and len(admission) > _MAX_ADMISSION_TOKEN:
            return None
        resources = self.app.state.get("onsale")
        if resources is None:
            return None
        result = cached_result(resources.jwt_auth.token_secret, token, resources.store)
        return (
            result if result is not None else token,
            idempotency.decode("latin-1") if idempotency is not None else None,
            admission.decode("latin-1") if admission is not None else None,
        )

    async def _verify(self, scope: Any, token: str) -> Any:
        """A token this process has not verified yet, as the JWT middleware verifies it
        (the same class and options, so the same cache, expiry and user check); None when
        it refuses (Litestar then answers)."""
        scope["app"] = scope["litestar_app"] = self.app  # the user check reads the app's store
        try:
            auth = self._auth
            if auth is None:
                jwt = self.app.state["onsale"].jwt_auth.middleware
                auth = self._auth = jwt.middleware(*jwt.args, app=None, **jwt.kwargs)
            return await auth.authenticate_token(token, ASGIConnection(scope))
        except NotAuthorizedException:
            return None
        except Exception:  # a failure (the store down): Litestar answers it as the route does
            log.warning("hot hold: verifying a token failed; Litestar answers", exc_info=True)
            return None

    async def _body(self, receive: Any, received: list[Any]) -> bytes | None:
        """The whole body within the size limit, else None; every message received is
        kept in ``received`` for Litestar."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return chunk if not chunks else b"".join([*chunks, chunk])
            chunks.append(chunk)

    async def _serve(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        start: float,
        data: OrderIn,
        result: Any,
        idempotency_key: str | None,
        admission_token: str | None,
        direct: Direct | None,
    ) -> None:
        # What Litestar's router and JWT middleware leave in the scope (the access log
        # reads the normalised path; a Request built for an error reads the rest).
        template = self.template
        scope["app"] = scope["litestar_app"] = self.app
        scope["path"] = template
        scope["path_template"] = template
        scope["path_params"] = {}
        scope["route_handler"] = self.handler
        scope["user"] = result.user
        scope["auth"] = result.auth
        progress = self.progress
        progress.inc()
        status = 200
        try:
            try:
                service = self.app.state["onsale"].orders
                response: Any = await hold_response(
                    service, result.user, data, idempotency_key, admission_token, self._instance
                )
            except Exception as exc:
                response = await self._error(scope, receive, send, exc)
            status = response.status_code
            if direct is None or type(response) is not EncodedJSON or not direct(response):
                await response(scope, receive, send)
        finally:
            progress.dec()
            finished("POST", template, status, time.perf_counter() - start)

    def _instance(self) -> str:
        return self.template  # served only without a root_path: request.url.path

    async def _error(self, scope: Any, receive: Any, send: Any, exc: Exception) -> Any:
        """What Litestar's exception middleware answers for ``exc`` raised by the route
        (its handler from api/errors.py, which logs unhandled errors; the response rendered
        by Litestar's own classes)."""
        app = self.app
        for hook in app.after_exception:
            await hook(exc, scope)
        handler = get_exception_handler(self.exception_handlers, exc)
        if handler is None:  # api/errors.py maps Exception: not reached
            raise exc
        request = app.request_class(scope=scope, receive=receive, send=send)
        return handler(request, exc).to_asgi_response(
            app=None, request=request, type_encoders=self.type_encoders
        )


def _order_in(body: bytes | None) -> OrderIn | None:
    """The body as ``strict_body`` accepts it for the route, else None."""
    if body is None:
        return None
    try:
        data: OrderIn = _decode(body)
    except msgspec.MsgspecError:
        return None
    return data


def _replay(received: list[Any], receive: Any) -> Any:
    """A ``receive`` that returns the messages already read, then reads on."""
    pending = iter(received)

    async def replayed() -> Any:
        for message in pending:
            return message
        return await receive()

    return replayed


def with_hot_hold(inner: Any, app: Litestar, settings: Settings) -> Any:
    """``inner`` with the lean hold in front, unless ``HOT_HOLD=false`` or CORS is on."""
    if not settings.hot_hold or settings.cors_origins:
        return inner
    return HotHold(inner, app, settings)
