"""HTTP for orders: hold (create), list mine, get, confirm, cancel (the rules are
api.services.orders).

The hold is the hot path: the service is reached by item access (``api.deps.orders``),
not ``Provide``, and the answer is pre-encoded (``EncodedJSON``). The hold and its answer
are :func:`hold_response`, which api/hot_hold.py (the lean ASGI handler in front of
Litestar) calls too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter
from litestar.status_codes import HTTP_201_CREATED

from api.deps import LimitParam, PageParam, caller, orders
from api.errors import PROBLEM, engine_problem, service_problem
from api.present import EncodedJSON, order_out, order_page
from api.schemas import ConfirmIn, OrderId, OrderIn, OrderOut, OrderPage
from api.security import Principal
from api.services.errors import ServiceError
from api.services.orders import IDEMPOTENCY_KEY, OrderService
from engine.errors import EngineError

_REPLAYED = ((b"idempotent-replayed", b"true"),)
_PROBLEM = PROBLEM.encode()


def hold_refusal(path: str, e: ServiceError | EngineError) -> EncodedJSON:
    """A refusal of a hold, by the service or the engine, as api/errors.py words it (the
    same status, headers and body), sent pre-encoded: Litestar's exception path (the
    handler look-up, a ``Response`` and its header objects) cost more than a refusal from
    the stock gate."""
    if isinstance(e, EngineError):
        status, body = engine_problem(path, e)
        return EncodedJSON(body, status, (), _PROBLEM)
    status, body, extra = service_problem(path, e)
    headers = tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in (extra or {}).items()
    )
    return EncodedJSON(body, status, headers, _PROBLEM)


async def hold_response(
    service: OrderService,
    who: Principal,
    data: OrderIn,
    idempotency_key: str | None,
    admission_token: str | None,
    path: Callable[[], str],
) -> EncodedJSON:
    """The hold and its answer: 201 with the order (``Idempotent-Replayed: true`` for a
    replay), or the service's or the engine's refusal. The one implementation of both the
    Litestar route (:meth:`OrderController.create_order`) and the lean handler in front of
    it (api/hot_hold.py); ``path`` gives the problem's ``instance`` (asked only on refusal).
    Anything else raised (Redis down) is the caller's to answer through api/errors.py."""
    tickets = [(t.categoriaId, t.cantidad) for t in data.tickets]
    try:
        result = await service.hold(who, data.eventoId, tickets, idempotency_key, admission_token)
    except (ServiceError, EngineError) as e:  # sold out, most of all once it sells out
        return hold_refusal(path(), e)
    return EncodedJSON(
        order_out(result.order), HTTP_201_CREATED, () if result.created else _REPLAYED
    )


class OrderController(Controller):
    path = "/api/orders"
    tags = ["orders"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        responses={
            HTTP_201_CREATED: ResponseSpec(
                OrderOut,
                description="The order, `RESERVED` until `expiraEn`; with "
                "`Idempotent-Replayed: true`, the order an earlier request with the same "
                "`Idempotency-Key` created.",
            )
        },
    )
    async def create_order(
        self,
        request: Request[Any, Any, Any],
        data: OrderIn,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Makes a retried hold safe: a second request with the same key "
                "answers the first one's order (`Idempotent-Replayed: true`), holding nothing.",
                # Documented only: the service checks it (422 bad_idempotency_key).
                schema_extra={"pattern": IDEMPOTENCY_KEY.pattern},
            ),
        ] = None,
        admission_token: Annotated[
            str | None,
            HeaderParameter(
                name="Admission-Token",
                required=False,
                max_length=128,
                description="While the event has an admission queue: the token its queue "
                "gave the caller (`admisionToken`), consumed by the hold (else 403).",
            ),
        ] = None,
    ) -> EncodedJSON:
        return await hold_response(
            orders(request),
            caller(request),
            data,
            idempotency_key,
            admission_token,
            lambda: request.url.path,
        )

    @get("/my-orders")
    async def my_orders(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> OrderPage:
        found, total = await orders(request).mine(caller(request), page, limit)
        return order_page(found, page, limit, total)

    @get("/{order_id:str}")
    async def get_order(self, request: Request[Any, Any, Any], order_id: OrderId) -> OrderOut:
        return order_out(await orders(request).get(caller(request), order_id))

    @put("/{order_id:str}/confirm")
    async def confirm(
        self, request: Request[Any, Any, Any], order_id: OrderId, data: ConfirmIn
    ) -> OrderOut:
        order = await orders(request).confirm(
            caller(request),
            order_id,
            payment_method=data.metodoPago,
            transaction_id=data.transactionId,
        )
        return order_out(order)

    @put("/{order_id:str}/extend")
    async def extend(self, request: Request[Any, Any, Any], order_id: OrderId) -> OrderOut:
        return order_out(await orders(request).extend(caller(request), order_id))

    @put("/{order_id:str}/cancel")
    async def cancel(self, request: Request[Any, Any, Any], order_id: OrderId) -> OrderOut:
        return order_out(await orders(request).cancel(caller(request), order_id))
