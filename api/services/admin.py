"""The admin views: every order, the platform's figures, one event's sales per category
(live from Redis, the stored totals for categories Redis does not know)."""

from __future__ import annotations

from dataclasses import dataclass

from api.security import Principal
from api.services.errors import Forbidden, NotFound
from engine.core import Engine
from engine.models import Order
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


@dataclass(frozen=True, slots=True)
class EventSales:
    event_id: str
    name: str
    categories: list[CategorySales]

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
        return await self.store.list_orders(page, limit, status=status, event_id=event_id)

    async def overview(self) -> Overview:
        """Users, events and orders from the store; tickets and revenue live from Redis."""
        order_stats = await self.store.order_stats()
        stocks = await self.engine.stocks(await self.engine.event_ids())
        live_holds = await self.engine.live_holds(list(stocks))
        categories = [c for s in stocks.values() for c in s.categories]
        return Overview(
            users_by_role=await self.store.count_users_by_role(),
            events=await self.store.count_events(),
            orders_by_status=order_stats.by_status,
            tickets_sold=sum(c.sold for c in categories),
            revenue=round(sum(c.sold * c.price for c in categories), 2),
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
        rows = []
        for c in event.categories:
            s = live.get(c.id)
            sold, held, left = (s.sold, s.held, s.available) if s else (0, 0, c.total)
            rows.append(
                CategorySales(
                    category_id=c.id,
                    name=c.name,
                    price=c.price,
                    total=c.total,
                    sold=sold,
                    held=held,
                    available=left,
                    revenue=round(sold * c.price, 2),
                )
            )
        return EventSales(event_id=event.id, name=event.name, categories=rows)
