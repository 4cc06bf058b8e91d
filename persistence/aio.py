"""Async access to a synchronous :class:`~persistence.store.Store`.

The adapters block (sqlite3, pymongo), so :class:`AsyncStore` runs each call on a bounded
``ThreadPoolExecutor`` and awaits it: the event loop never blocks on the database, and at
most ``max_workers`` calls run at once (further calls queue in the executor). Methods
mirror the port one to one, as coroutines with the same names and arguments.
"""

from __future__ import annotations

from collections.abc import Collection

from engine.models import Order
from persistence.pooled import PooledAdapter
from persistence.store import CategorySales, Event, OrderStats, Store, User

DEFAULT_WORKERS = 4


class AsyncStore(PooledAdapter[Store]):
    """A :class:`Store` whose methods are coroutines, run in a bounded thread pool."""

    def __init__(self, store: Store, *, max_workers: int = DEFAULT_WORKERS) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        super().__init__(
            store,
            max_workers=max_workers,
            thread_name_prefix="store",
            closed_message="the store is closed",
        )
        self.max_workers = max_workers

    async def ping(self) -> None:
        await self._run(self.store.ping)

    # users -----------------------------------------------------------------------------

    async def create_user(self, user: User) -> None:
        await self._run(self.store.create_user, user)

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(self.store.get_user, user_id)

    async def existing_user_ids(self, user_ids: Collection[str]) -> set[str]:
        return await self._run(self.store.existing_user_ids, user_ids)

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._run(self.store.get_user_by_email, email)

    async def delete_user(self, user_id: str) -> bool:
        return await self._run(self.store.delete_user, user_id)

    async def count_users_by_role(self) -> dict[str, int]:
        return await self._run(self.store.count_users_by_role)

    # events ----------------------------------------------------------------------------

    async def create_event(self, event: Event) -> None:
        await self._run(self.store.create_event, event)

    async def get_event(self, event_id: str) -> Event | None:
        return await self._run(self.store.get_event, event_id)

    async def replace_event(self, event: Event) -> bool:
        return await self._run(self.store.replace_event, event)

    async def delete_event(self, event_id: str) -> bool:
        return await self._run(self.store.delete_event, event_id)

    async def list_events(
        self,
        page: int,
        limit: int,
        *,
        date_from_ms: int | None = None,
        date_to_ms: int | None = None,
        location: str | None = None,
        ids: Collection[str] | None = None,
    ) -> tuple[list[Event], int]:
        return await self._run(
            self.store.list_events,
            page,
            limit,
            date_from_ms=date_from_ms,
            date_to_ms=date_to_ms,
            location=location,
            ids=ids,
        )

    async def all_events(self) -> list[Event]:
        return await self._run(self.store.all_events)

    async def count_events(self) -> int:
        return await self._run(self.store.count_events)

    # orders ----------------------------------------------------------------------------

    async def upsert_orders(self, orders: list[Order]) -> int:
        return await self._run(self.store.upsert_orders, orders)

    async def get_order(self, order_id: str) -> Order | None:
        return await self._run(self.store.get_order, order_id)

    async def get_orders(self, order_ids: Collection[str]) -> list[Order]:
        return await self._run(self.store.get_orders, order_ids)

    async def existing_order_ids(self, order_ids: Collection[str]) -> set[str]:
        return await self._run(self.store.existing_order_ids, order_ids)

    async def list_user_orders(
        self,
        user_id: str,
        page: int,
        limit: int,
        *,
        before: int = 0,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        return await self._run(
            self.store.list_user_orders,
            user_id,
            page,
            limit,
            before=before,
            exclude_ids=exclude_ids,
        )

    async def list_orders(
        self,
        page: int,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
        exclude_ids: Collection[str] | None = None,
    ) -> tuple[list[Order], int]:
        return await self._run(
            self.store.list_orders,
            page,
            limit,
            status=status,
            event_id=event_id,
            exclude_ids=exclude_ids,
        )

    async def order_stats(self, *, exclude_ids: Collection[str] | None = None) -> OrderStats:
        return await self._run(self.store.order_stats, exclude_ids=exclude_ids)

    async def event_sales(
        self, event_id: str, *, exclude_ids: Collection[str] | None = None
    ) -> dict[str, CategorySales]:
        return await self._run(self.store.event_sales, event_id, exclude_ids=exclude_ids)

    async def sold_counts(self, event_id: str) -> dict[str, int]:
        return await self._run(self.store.sold_counts, event_id)

    async def orders_after(
        self,
        after: tuple[int, str] | None,
        limit: int,
        *,
        status: str | None = None,
        event_id: str | None = None,
    ) -> list[Order]:
        return await self._run(
            self.store.orders_after, after, limit, status=status, event_id=event_id
        )
