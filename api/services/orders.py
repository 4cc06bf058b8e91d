"""The order rules: holding (rate limit, idempotency key), who may see an order,
confirming under the CONFIRM_DURABILITY policy, cancelling, and a buyer's order list
merged from the store and the orders Redis holds that the writer has not persisted yet."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Protocol

from api.metrics import CANCELS, CONFIRMS, counted_hold
from api.security import Principal, RateLimiter
from api.services.errors import Conflict, Invalid, NotFound, RateLimited, Unavailable
from api.services.stock_gate import StockGate
from engine.core import Engine
from engine.errors import NotReplicated, OrderRetired, SoldOut
from engine.models import HoldResult, Order
from persistence.aio import AsyncStore

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_MERGED = 2000


class PersistenceWaiter(Protocol):
    """What confirming needs of a writer running in this process."""

    async def wait_persisted(self, order_id: str, version: int, timeout: float) -> bool: ...  # noqa: ASYNC109


def _rank(order: Order) -> tuple[int, str]:
    """The store's order: newest first, ties by id."""
    return order.created_at, order.id


def sold_out(category_id: str, name: str, available: object) -> Conflict:
    """The 409 ``sold_out`` of a hold, whether the script or the stock gate refused it."""
    return Conflict(
        f"not enough tickets in category {name!r} ({category_id}): {available} available",
        code=SoldOut.code,
        categoriaId=category_id,
        categoriaNombre=name,
        disponible=available,
    )


class OrderService:
    def __init__(
        self,
        engine: Engine,
        store: AsyncStore,
        limiter: RateLimiter,
        *,
        durability: str = "redis",
        store_timeout_s: float = 5.0,
        writer: PersistenceWaiter | None = None,
        gate: StockGate | None = None,
    ) -> None:
        self.gate = gate
        self.engine = engine
        self.store = store
        self.limiter = limiter
        self.durability = durability
        self.store_timeout_s = store_timeout_s
        self.writer = writer

    @counted_hold  # onsale_holds_total{result}, onsale_hold_duration_seconds
    async def hold(
        self,
        who: Principal,
        event_id: str,
        tickets: Iterable[tuple[str, int]],
        idempotency_key: str | None = None,
        admission_token: str | None = None,
    ) -> HoldResult:
        """Hold tickets until the hold's deadline. ``created`` is False when an earlier
        request with the same idempotency key already made the order (it is returned).
        While the event has an admission queue, ``admission_token`` (header
        ``Admission-Token``) is required and consumed by the hold itself."""
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise Invalid(
                "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 _ . : -",
                code="bad_idempotency_key",
            )
        retry_after = await self.limiter.hit("orders", who.id)
        if retry_after is not None:
            raise RateLimited(retry_after)
        gate = self.gate
        if gate is not None:
            # A sold-out category refused from this process's stock, no Redis
            # (api/services/stock_gate.py); anything else is the script's decision.
            if admission_token is None:
                tickets = list(tickets)
                short = gate.check(event_id, tickets)
                # A keyed hold (the page sends a key with every hold) may be a replay of
                # an order made before the sell-out: one read of the key's two records
                # says whether only the engine may answer it.
                if short is not None and (
                    idempotency_key is None
                    or not await self.engine.key_in_use(event_id, who.id, idempotency_key)
                ):
                    raise sold_out(short.category_id, short.name, short.available)
            else:
                gate.watch(event_id)
        try:
            return await self.engine.hold(
                event_id,
                who.id,
                tickets,
                idempotency_key=idempotency_key,
                remember=True,
                admission_token=admission_token,
            )
        except OrderRetired as e:
            # A replay of an order that has left Redis (finished, stored, retention over).
            stored = await self.store.get_order(str(e.details["order_id"]))
            if stored is None or stored.user_id != who.id:
                raise
            return HoldResult(stored, created=False)
        except SoldOut as e:
            raise await self._sold_out(event_id, e) from None

    async def _sold_out(self, event_id: str, e: SoldOut) -> Exception:
        """The engine's refusal names the category by id: say its name too."""
        category_id = str(e.details.get("category", ""))
        # The gate's names first: at a sell-out every refusal asked Redis for the stock,
        # each a call of its own (a burst of them grew the connection pool).
        name = self.gate.category_name(event_id, category_id) if self.gate is not None else None
        if name is not None:
            return sold_out(category_id, name, e.details.get("available"))
        stock = await self.engine.stock(event_id)
        category = stock.category(category_id) if stock is not None else None
        if category is None:
            return e
        return sold_out(category_id, category.name, e.details.get("available"))

    async def get(self, who: Principal, order_id: str) -> Order:
        """Redis first (live and authoritative), then the store (older, or Redis lost).
        Someone else's order is not found, unless the caller is an ADMIN."""
        order = await self.engine.get_order(order_id)
        if order is None:
            order = await self.store.get_order(order_id)
        if order is None or (order.user_id != who.id and not who.is_admin):
            raise NotFound("order not found", code="order_not_found")
        return order

    async def confirm(
        self, who: Principal, order_id: str, *, payment_method: str, transaction_id: str
    ) -> Order:
        # CONFIRM_DURABILITY=replica: WAIT must follow the confirm on the connection that
        # ran it (Redis counts only that connection's writes), so the engine sends both.
        replicas = 1 if self.durability == "replica" else 0
        try:
            result = await self.engine.confirm(
                order_id,
                who.id,
                payment_method=payment_method,
                transaction_id=transaction_id,
                is_admin=who.is_admin,
                replicas=replicas,
                replica_timeout_ms=int(self.store_timeout_s * 1000),
            )
        except NotReplicated:
            raise Unavailable(
                "the confirmation is not yet replicated; retrying is safe",
                code="not_replicated",
                retry_after=1,
            ) from None
        if result.created:  # a retried confirm counts once
            CONFIRMS.inc()
        await self._durable(result.order)
        return result.order

    async def _durable(self, order: Order) -> None:
        """Hold the answer until CONFIRM_DURABILITY=store is met (the store has the sale;
        ``replica`` was waited for with the confirm itself), else Redis alone."""
        timeout = self.store_timeout_s
        if self.durability == "store":
            if self.writer is not None:
                stored = await self.writer.wait_persisted(order.id, order.version, timeout)
            else:
                stored = await self._poll_store(order, timeout)
            if not stored:
                raise Unavailable(
                    "the confirmation is not yet persisted; retrying is safe",
                    code="not_persisted",
                    retry_after=1,
                )

    async def _poll_store(self, order: Order, wait_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            stored = await self.store.get_order(order.id)
            if stored is not None and stored.version >= order.version:
                return True
            await asyncio.sleep(0.02)
        return False

    async def extend(self, who: Principal, order_id: str) -> Order:
        """The owner's held order, given more time within the server's caps (SPEC 10.3);
        anyone else's order is not found (an ADMIN's too: extending is the buyer's call)."""
        return await self.engine.extend(order_id, who.id)

    async def cancel(self, who: Principal, order_id: str) -> Order:
        result = await self.engine.cancel(order_id, who.id, is_admin=who.is_admin)
        if result.created:
            CANCELS.inc()
        return result.order

    # -- a buyer's orders ------------------------------------------------------------------

    async def mine(self, who: Principal, page: int, limit: int) -> tuple[list[Order], int]:
        """One page of the caller's orders, newest first, and their total: the store's
        rows merged with the recent orders Redis holds (the newer version wins), so an
        order shows before the writer has persisted it.

        The store is read as deep as the page (``page * limit`` rows). A recent order
        that is not among those rows but ranks above the last of them (or the store ran
        out) is not in the store, so it counts towards the total without a look-up; only
        recent orders older than the page need one (:meth:`_count_unstored`)."""
        depth = min(page * limit, MAX_MERGED)
        stored, stored_total = await self.store.list_user_orders(who.id, 1, depth)
        recent = await self.engine.recent_user_orders(who.id)
        merged = {o.id: o for o in stored}
        floor = _rank(stored[-1]) if stored and len(stored) < stored_total else None
        older: list[Order] = []
        unpersisted = 0
        for live in recent:
            known = merged.get(live.id)
            if known is None:
                if floor is None or _rank(live) > floor:
                    unpersisted += 1
                else:
                    older.append(live)
            if known is None or live.version >= known.version:
                merged[live.id] = live
        if older:
            unpersisted += await self._count_unstored(who.id, depth, older)
        ordered = sorted(merged.values(), key=_rank, reverse=True)
        return ordered[(page - 1) * limit : page * limit], stored_total + unpersisted

    async def _count_unstored(self, user_id: str, depth: int, older: list[Order]) -> int:
        """How many of ``older`` (recent orders ranking below the store's first ``depth``
        rows) the store does not hold: one read of the rows just below, deep enough to
        hold them all; a point read only for those that read cannot settle."""
        rows, _ = await self.store.list_user_orders(user_id, 1, depth + len(older))
        ids = {o.id for o in rows[depth:]}
        bottom = _rank(rows[-1]) if len(rows) == depth + len(older) else None
        missing = 0
        for order in older:
            if order.id in ids:
                continue
            settled = bottom is None or _rank(order) > bottom
            if settled or await self.store.get_order(order.id) is None:
                missing += 1
        return missing
