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
        rows merged with the recent orders Redis holds (Redis's copy wins unless the
        store's is newer), so an order shows before the writer has persisted it.

        Only what the page needs is read: the ids of the caller's recent orders (Redis)
        and which of them the store holds (ids alone); the others from Redis, the orders
        the writer has not stored yet (usually none or a few); the store's page without
        them (so one stored meanwhile counts once), preceded by as many rows as they are,
        the rows they may push down into the page; Redis's copies of the page's recent
        stored orders. The total is the store's plus the unstored orders."""
        recent = await self.engine.recent_user_order_ids(who.id)
        stored = await self.store.existing_order_ids(recent) if recent else set()
        pending = [order_id for order_id in recent if order_id not in stored]
        unstored = [o for o in await self.engine.get_orders(pending) if o.user_id == who.id]
        unstored.sort(key=_rank, reverse=True)
        offset = (page - 1) * limit
        back = min(len(unstored), offset)
        rows, stored_total = await self.store.list_user_orders(
            who.id, page, limit, before=back, exclude_ids=pending or None
        )
        found = _merged_page(rows, offset - back, unstored, offset, limit)
        overlaid = [o.id for o in found if o.id in stored]
        if overlaid:
            live = {o.id: o for o in await self.engine.get_orders(overlaid)}
            found = [_newer(live.get(o.id), o) for o in found]
        return found, stored_total + len(unstored)


def _newer(live: Order | None, stored: Order) -> Order:
    """Redis's copy of a stored order, unless the store's is newer (or Redis has none)."""
    return live if live is not None and live.version >= stored.version else stored


def _merged_page(
    rows: list[Order], start: int, unstored: list[Order], offset: int, limit: int
) -> list[Order]:
    """Orders ``offset`` to ``offset + limit`` of the store's rows merged with the orders
    it does not hold (``unstored``, newest first), given the store's rows from its row
    ``start`` (``offset - start`` being at least as many as the unstored orders, unless
    ``start`` is 0) down to the page's end or the store's.

    A stored row's place is its row number plus the unstored orders ranking above it,
    so the rows read are all that can reach the page; an unstored order ranking above
    the first row read places before the page (and only counts), one ranking below the
    last row read (while the store has more) after it."""
    if start and not rows:
        return []  # the store ends above the page: so does the merge
    if start:
        first = _rank(rows[0])
        below = [o for o in unstored if _rank(o) < first]
        base = start + len(unstored) - len(below)  # the place of rows[0]
    else:
        below, base = unstored, 0
    merged = sorted([*rows, *below], key=_rank, reverse=True)
    return merged[offset - base : offset - base + limit]
