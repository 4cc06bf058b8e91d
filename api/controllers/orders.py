"""Orders: hold (create), list mine, get, confirm, cancel."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED

from api.deps import LimitParam, PageParam, caller, rate_limit, resources
from api.errors import ApiError
from api.present import EncodedJSON, order_out
from api.schemas import ConfirmIn, OrderId, OrderIn, OrderOut, OrderPage, pagination
from api.state import Resources
from engine.models import Order

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_MERGED = 2000
_REPLAYED = ((b"idempotent-replayed", b"true"),)


def _newest_first(orders: list[Order]) -> list[Order]:
    return sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)


async def _find_order(res: Resources, order_id: str) -> Order | None:
    """Redis first (live and authoritative), then the store (older or Redis lost)."""
    order = await res.engine.get_order(order_id)
    if order is None:
        order = await res.store.get_order(order_id)
    return order


class OrderController(Controller):
    path = "/api/orders"
    tags = ["orders"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        responses={
            HTTP_201_CREATED: ResponseSpec(
                OrderOut,
                description="The order, HELD until `expiraEn`; with `Idempotent-Replayed: true`, "
                "the order an earlier request with the same Idempotency-Key created.",
            )
        },
    )
    async def create_order(
        self,
        request: Request[Any, Any, Any],
        data: OrderIn,
        idempotency_key: Annotated[
            str | None, Parameter(header="Idempotency-Key", required=False)
        ] = None,
    ) -> EncodedJSON:
        res = resources(request)
        who = caller(request)
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(
                422,
                "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ . : -",
                code="bad_idempotency_key",
            )
        await rate_limit(request, "orders", who.id)
        result = await res.engine.hold(
            data.eventoId,
            who.id,
            [(t.categoriaId, t.cantidad) for t in data.tickets],
            idempotency_key=idempotency_key,
            remember=True,
        )
        return EncodedJSON(
            order_out(result.order),
            HTTP_201_CREATED,
            () if result.created else _REPLAYED,
        )

    @get("/my-orders")
    async def my_orders(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> OrderPage:
        res = resources(request)
        who = caller(request)
        depth = min(page * limit, MAX_MERGED)
        stored, stored_total = await res.store.list_user_orders(who.id, 1, depth)
        recent = await res.engine.recent_user_orders(who.id)
        merged = {o.id: o for o in stored}
        unpersisted = 0
        for live in recent:
            known = merged.get(live.id)
            if known is None and await res.store.get_order(live.id) is None:
                unpersisted += 1
            if known is None or live.version >= known.version:
                merged[live.id] = live
        ordered = _newest_first(list(merged.values()))
        window = ordered[(page - 1) * limit : page * limit]
        return OrderPage(
            data=[order_out(o) for o in window],
            pagination=pagination(page, limit, stored_total + unpersisted),
        )

    @get("/{order_id:str}")
    async def get_order(self, request: Request[Any, Any, Any], order_id: OrderId) -> OrderOut:
        res = resources(request)
        who = caller(request)
        order = await _find_order(res, order_id)
        if order is None or (order.user_id != who.id and not who.is_admin):
            raise ApiError(404, "order not found", code="order_not_found")
        return order_out(order)

    @put("/{order_id:str}/confirm")
    async def confirm(
        self, request: Request[Any, Any, Any], order_id: OrderId, data: ConfirmIn
    ) -> OrderOut:
        res = resources(request)
        who = caller(request)
        result = await res.engine.confirm(
            order_id,
            who.id,
            payment_method=data.metodoPago,
            transaction_id=data.transactionId,
            is_admin=who.is_admin,
        )
        await self._durable(res, result.order)
        return order_out(result.order)

    async def _durable(self, res: Resources, order: Order) -> None:
        """Hold the answer until CONFIRM_DURABILITY is met (SPEC section 7)."""
        mode = res.settings.confirm_durability
        timeout = res.settings.confirm_store_timeout_s
        if mode == "replica":
            if not await res.engine.wait_replicated(order.id, 1, int(timeout * 1000)):
                raise ApiError(
                    503,
                    "the confirmation is not yet replicated; retrying is safe",
                    code="not_replicated",
                    headers={"Retry-After": "1"},
                )
        elif mode == "store":
            stored = None
            if res.writer is not None:
                stored = await res.writer.wait_persisted(order.id, order.version, timeout)
            else:
                stored = await _poll_store(res, order, timeout)
            if not stored:
                raise ApiError(
                    503,
                    "the confirmation is not yet persisted; retrying is safe",
                    code="not_persisted",
                    headers={"Retry-After": "1"},
                )

    @put("/{order_id:str}/cancel")
    async def cancel(self, request: Request[Any, Any, Any], order_id: OrderId) -> OrderOut:
        res = resources(request)
        who = caller(request)
        result = await res.engine.cancel(order_id, who.id, is_admin=who.is_admin)
        return order_out(result.order)


async def _poll_store(res: Resources, order: Order, wait_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while loop.time() < deadline:
        stored = await res.store.get_order(order.id)
        if stored is not None and stored.version >= order.version:
            return True
        await asyncio.sleep(0.02)
    return False
