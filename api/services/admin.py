"""The admin views: every order, the platform's figures, one event's sales per category
(live from Redis, the stored totals for categories Redis does not know)."""

from __future__ import annotations

from dataclasses import dataclass

from api.security import Principal
from api.services import unpersisted
from api.services.errors import Forbidden, NotFound
from engine.core import Engine
from engine.models import Order
from engine.queue import QueueEngine, QueueInfo
from persistence.aio import AsyncStore


@dataclass(frozen=True, slots=True)
class Overview:
    users_by_role: dict[str, int]
    events: int
    orders_by_status: dict[str, int]
    tickets_sold: int
    revenue: float
    live_holds: int
    tickets_held: int


@dataclass(frozen=True, slots=True)
class CategorySales:
    category_id: str
    name: str
    price: float
    total: int
    sold: int
    held: int
    available: int
    revenue: float
    waiting: int = 0  # waitlist entries still waiting


@dataclass(frozen=True, slots=True)
class EventSales:
    event_id: str
    name: str
    categories: list[CategorySales]
    queue: QueueInfo | None = None
    queue_outflow: int = 0  # admissions in the last minute

    @property
    def total(self) -> int:
        return sum(c.total for c in self.categories)

    @property
    def sold(self) -> int:
        return sum(c.sold for c in self.categories)

    @property
    def held(self) -> int:
        return sum(c.held for c in self.categories)

    @property
    def available(self) -> int:
        return sum(c.available for c in self.categories)

    @property
    def revenue(self) -> float:
        return round(sum(c.revenue for c in self.categories), 2)


class AdminService:
    def __init__(self, engine: Engine, store: AsyncStore) -> None:
        self.engine = engine
        self.store = store

    async def orders(
        self, page: int, limit: int, *, status: str | None = None, event_id: str | None = None
    ) -> tuple[list[Order], int]:
        """The store's orders with those Redis has and the writer has not stored yet
        (read-your-writes: a confirmed order is listed at once)."""
        return await unpersisted.list_orders(
            self.engine, self.store, page, limit, status=status, event_id=event_id
        )

    async def overview(self) -> Overview:
        """Users, events, orders and revenue (what buyers paid: the confirmed orders'
        totals) from the store with the orders not stored yet; tickets live from Redis."""
        order_stats = await unpersisted.order_stats(self.engine, self.store)
        stocks = await self.engine.stocks(await self.engine.event_ids())
        live_holds = await self.engine.live_holds(list(stocks))
        categories = [c for s in stocks.values() for c in s.categories]
        return Overview(
            users_by_role=await self.store.count_users_by_role(),
            events=await self.store.count_events(),
            orders_by_status=order_stats.by_status,
            tickets_sold=sum(c.sold for c in categories),
            revenue=order_stats.revenue,
            live_holds=live_holds,
            tickets_held=sum(c.held for c in categories),
        )

    async def event_sales(self, who: Principal, event_id: str) -> EventSales:
        """The event's organizer or an ADMIN only."""
        event = await self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"event {event_id} not found", code="event_not_found")
        if not who.is_admin and event.organizer_id != who.id:
            raise Forbidden("only the event's organizer or an ADMIN", code="not_owner")
        stock = await self.engine.stock(event_id)
        live = {c.id: c for c in stock.categories} if stock else {}
        # Revenue is what the buyers paid (the unit prices in their confirmed orders),
        # never tickets sold x today's price.
        paid = await unpersisted.event_sales(self.engine, self.store, event_id)
        rows = []
        for c in event.categories:
            s = live.get(c.id)
            stored = paid.get(c.id)
            gone = stored.sold if stored else 0
            sold, held, left = (s.sold, s.held, s.available) if s else (gone, 0, c.total - gone)
            rows.append(
                CategorySales(
                    category_id=c.id,
                    name=c.name,
                    price=c.price,
                    total=c.total,
                    sold=sold,
                    held=held,
                    available=left,
                    revenue=stored.revenue if stored else 0.0,
                    waiting=s.waiting if s else 0,
                )
            )
        queues = QueueEngine(self.engine)
        queue = await queues.info(event_id)
        outflow = await queues.outflow(event_id) if queue else 0
        return EventSales(
            event_id=event.id, name=event.name, categories=rows, queue=queue, queue_outflow=outflow
        )
