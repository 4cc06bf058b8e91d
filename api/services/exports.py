"""CSV exports of orders (SPEC 11.2): who may export what, and the rows.

The CSV is produced as it is sent: the store is read in keyset pages
(``orders_after``), one page at a time, so memory stays constant however many orders
there are. One row per order line; ``total`` is the order's total as the buyer paid it
(repeated on each line of the order). Cells that a spreadsheet would run as a formula
(starting with ``= + - @``, tab or CR) are prefixed with ``'`` (OWASP's advice).

Read-your-writes, as the JSON admin list: orders the writer has not stored yet (a confirm
of a moment ago) come first from the order logs (:mod:`api.services.unpersisted`, bounded
by the writer's lag), and the store's copies of those orders are skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from api.security import Principal
from api.services.errors import Forbidden, NotFound
from api.services.unpersisted import overlay
from engine.core import Engine
from engine.models import Order, iso
from persistence.aio import AsyncStore

HEADER = (
    "id",
    "eventoId",
    "usuarioId",
    "estado",
    "categoria",
    "cantidad",
    "precioUnitario",
    "total",
    "creadoEn",
    "confirmadoEn",
    "metodoPago",
    "transactionId",
)
PAGE = 1000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell


def money(value: float) -> str:
    return f"{value:.2f}"


def rows(order: Order) -> list[list[str]]:
    base = [order.id, order.event_id, order.user_id, order.status]
    tail = [
        money(order.total),
        iso(order.created_at),
        iso(order.confirmed_at) if order.confirmed_at else "",
        order.payment_method or "",
        order.transaction_id or "",
    ]
    return [
        [safe(c) for c in (*base, t.name, str(t.quantity), money(t.unit_price), *tail)]
        for t in order.tickets
    ]


class ExportService:
    def __init__(self, store: AsyncStore, engine: Engine, *, page: int = PAGE) -> None:
        self.store = store
        self.engine = engine
        self.page = page

    async def event_orders(self, who: Principal, event_id: str) -> AsyncIterator[bytes]:
        """The event's orders; its organizer or an ADMIN only (checked before the first
        byte is sent)."""
        event = await self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        if not who.is_admin and event.organizer_id != who.id:
            raise Forbidden("only the event's organizer or an ADMIN", code="not_owner")
        return await self._csv(status=None, event_id=event_id)

    async def orders(self, *, status: str | None, event_id: str | None) -> AsyncIterator[bytes]:
        """Every order (ADMIN; the guard is the route's), filtered like the JSON list."""
        return await self._csv(status=status, event_id=event_id)

    async def _csv(self, *, status: str | None, event_id: str | None) -> AsyncIterator[bytes]:
        """The orders the writer has not stored yet are read before the first byte, so a
        writer too far behind is a 503 (``store_behind``), not a cut-off file."""
        event_ids = [event_id] if event_id is not None else await self.engine.event_ids()
        copies = await overlay(self.engine, self.store, event_ids, complete=True)
        return self._rows(copies, status=status, event_id=event_id)

    async def _rows(
        self, copies: dict[str, Order], *, status: str | None, event_id: str | None
    ) -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(HEADER)
        for order in sorted(copies.values(), key=lambda o: (o.created_at, o.id), reverse=True):
            if status is None or order.status == status:
                writer.writerows(rows(order))
        after: tuple[int, str] | None = None
        while True:
            page = await self.store.orders_after(after, self.page, status=status, event_id=event_id)
            for order in page:
                if order.id not in copies:
                    writer.writerows(rows(order))
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            if len(page) < self.page:
                return
            after = (page[-1].created_at, page[-1].id)
